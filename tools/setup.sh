#!/usr/bin/env bash
# Installs what vigil needs to build, run and test, idempotently, on Debian 12 (as root, or with sudo).
# Only the package registries are used: Debian's packages and PyPI (the ONNX Runtime library is taken
# from the pinned `onnxruntime` wheel, checked against its sha256). Running it again changes nothing.
#
#   tools/setup.sh           build + run dependencies
#   tools/setup.sh --test    also the test dependencies (exiftool, servers used by tests)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
want_test=0
[ "${1:-}" = "--test" ] && want_test=1

say() { printf 'setup: %s\n' "$*" >&2; }
sudo_() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# --- Debian packages ----------------------------------------------------------------------------------
# libturbojpeg0-dev: JPEG decoding (vigil-capture links libturbojpeg); ffmpeg: video other than MJPEG
# Matroska, RTSP and V4L2 sources are read through an ffmpeg child process.
pkgs=(libturbojpeg0-dev ffmpeg pkg-config python3 python3-pip ca-certificates curl build-essential)
# OpenCV (and the clang its binding generator needs) only while a crate still uses the opencv crate.
if grep -qs '^opencv' "$root"/crates/*/Cargo.toml "$root"/benches/Cargo.toml; then
  pkgs+=(libopencv-dev clang libclang-dev)
fi
[ $want_test -eq 1 ] && pkgs+=(libimage-exiftool-perl)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  sudo_ apt-get update -qq
  sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- Rust toolchain (1.92 or newer) ---------------------------------------------------------------------
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
rust_ok() {
  command -v cargo >/dev/null 2>&1 && command -v cargo-clippy >/dev/null 2>&1 && command -v rustfmt >/dev/null 2>&1 || return 1
  local v; v=$(rustc --version 2>/dev/null | awk '{print $2}')
  [ "$(printf '%s\n1.92.0\n' "$v" | sort -V | head -n1)" = "1.92.0" ]
}
if ! rust_ok; then
  say "installing Debian's current Rust toolchain (rustc-web, cargo-web, clippy, rustfmt)"
  sudo_ apt-get update -qq
  sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    rustc-web cargo-web rust-web-clippy rustfmt-web >/dev/null
  rust_ok || { say "no Rust 1.92 or newer with clippy and rustfmt could be installed"; exit 1; }
fi

# --- ONNX Runtime shared library from the pinned PyPI wheel --------------------------------------------
ort_version=1.32.0
case "$(uname -m)" in
  x86_64) ort_plat=x86_64; ort_sha=5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d ;;
  aarch64) ort_plat=aarch64; ort_sha=2303372a85299b6757b0e11e1cbf13e410ddf7e10c37f4b37e99d1c90e7daf7c ;;
  *) say "no pinned ONNX Runtime wheel for $(uname -m)"; exit 1 ;;
esac
"$root/tools/fetch-ort.sh" "$ort_version" "$ort_plat" "$ort_sha" "$root/.local/onnxruntime"

# --- extra steps (test servers, face model, ...) -------------------------------------------------------
for step in "$root"/tools/setup.d/*.sh; do
  [ -e "$step" ] || continue
  VIGIL_ROOT="$root" VIGIL_SETUP_TEST=$want_test bash "$step"
done
say "ready"
