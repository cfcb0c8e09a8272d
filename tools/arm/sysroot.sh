#!/usr/bin/env bash
# Prepares everything the aarch64 cross-build and its emulated tests need, idempotently, without changing
# the system's apt sources or dpkg architectures:
#   - gcc/g++-aarch64-linux-gnu (Debian packages, installed with apt-get);
#   - the rustup target aarch64-unknown-linux-gnu;
#   - an arm64 sysroot in .local/arm/sysroot: Debian 12's arm64 libturbojpeg0 (with headers), and OpenCV
#     (core, imgproc, imgcodecs, videoio) while a crate still uses it, and every library they pull in, fetched by a private apt instance (its own
#     sources list, lists, status and cache under .local/arm/apt) and unpacked with `dpkg -x`; plus the
#     libblas.so.3 / liblapack.so.3 links Debian's install scripts would make;
#   - qemu-user 10 from bookworm-backports, unpacked with `dpkg -x` into .local/arm/qemu (Debian 12's
#     qemu-user 7.2 crashes ONNX Runtime);
#   - the aarch64 ONNX Runtime library from the pinned PyPI wheel (tools/setup.sh holds the pin).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
base="$root/.local/arm"
apt_dir="$base/apt"
sysroot="$base/sysroot"
say() { printf 'arm-setup: %s\n' "$*" >&2; }
sudo_() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# --- cross compilers (Debian packages) -----------------------------------------------------------------
missing=()
for p in gcc-aarch64-linux-gnu g++-aarch64-linux-gnu; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  sudo_ apt-get update -qq
  sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- Rust target ----------------------------------------------------------------------------------------
[ -x "$HOME/.cargo/bin/rustup" ] && export PATH="$HOME/.cargo/bin:$PATH"
if ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
  say "adding the rustup target aarch64-unknown-linux-gnu"
  rustup target add aarch64-unknown-linux-gnu
fi

# --- private apt instance (arm64 + amd64 lists; the system's apt state is untouched) ---------------------
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/etc/parts"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
cat > "$apt_dir/etc/sources.list" <<EOF
deb [arch=arm64,amd64 signed-by=$keyring] http://deb.debian.org/debian bookworm main
deb [arch=arm64,amd64 signed-by=$keyring] http://deb.debian.org/debian bookworm-updates main
deb [arch=arm64,amd64 signed-by=$keyring] http://deb.debian.org/debian-security bookworm-security main
deb [arch=arm64,amd64 signed-by=$keyring] http://deb.debian.org/debian bookworm-backports main
EOF
touch "$apt_dir/status"
apt_opts=(
  -o "Dir::State=$apt_dir" -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::State::status=$apt_dir/status"
  -o "Dir::Cache=$apt_dir/cache" -o "Dir::Cache::archives=$apt_dir/cache/archives"
  -o "Dir::Etc::SourceList=$apt_dir/etc/sources.list" -o "Dir::Etc::SourceParts=$apt_dir/etc/parts"
  -o "Dir::Etc::Preferences=$apt_dir/etc/preferences" -o "Dir::Etc::PreferencesParts=$apt_dir/etc/parts"
  -o "APT::Sandbox::User=root"
  -o "APT::Architectures::=arm64" -o "APT::Architectures::=amd64" -o "Debug::NoLocking=1"
  -o "APT::Install-Recommends=false" -o "APT::Get::AllowUnauthenticated=false"
)
if [ ! -f "$apt_dir/.updated" ] || [ -n "$(find "$apt_dir/.updated" -mtime +7 2>/dev/null)" ]; then
  say "fetching Debian 12 package lists (arm64, amd64) into $apt_dir"
  apt-get "${apt_opts[@]}" -qq update
  touch "$apt_dir/.updated"
fi

# --- arm64 sysroot --------------------------------------------------------------------------------------
arm_pkgs=(libturbojpeg0 libturbojpeg0-dev libc6-dev libstdc++-12-dev)
# OpenCV only while a crate still uses the opencv crate.
if grep -qs '^opencv' "$root"/crates/*/Cargo.toml "$root"/benches/Cargo.toml; then
  arm_pkgs+=(libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev libopencv-videoio-dev)
fi
stamp="$sysroot/.packages"
want="${arm_pkgs[*]}"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "downloading arm64 ${arm_pkgs[*]} and their dependencies (this takes a while the first time)"
  apt-get "${apt_opts[@]}" -o APT::Architecture=arm64 -qq -y install --download-only \
    $(printf '%s:arm64 ' "${arm_pkgs[@]}") >/dev/null
  rm -rf "$sysroot.tmp"
  mkdir -p "$sysroot.tmp"
  n=0
  for deb in "$apt_dir"/cache/archives/*_arm64.deb "$apt_dir"/cache/archives/*_all.deb; do
    [ -e "$deb" ] || continue
    dpkg -x "$deb" "$sysroot.tmp"
    n=$((n + 1))
  done
  say "unpacked $n packages"
  # Absolute symbolic links would point into the host: make them relative to the sysroot.
  find "$sysroot.tmp" -type l | while read -r l; do
    t=$(readlink "$l")
    case "$t" in
      /*) ln -sfn "$(realpath -m --relative-to="$(dirname "$l")" "$sysroot.tmp$t")" "$l" ;;
    esac
  done
  # What update-alternatives would do for BLAS/LAPACK (OpenCV links libblas.so.3 and liblapack.so.3).
  multi="$sysroot.tmp/usr/lib/aarch64-linux-gnu"
  for lib in libblas.so.3 liblapack.so.3; do
    for dir in blas lapack openblas-pthread atlas; do
      if [ -e "$multi/$dir/$lib" ] && [ ! -e "$multi/$lib" ]; then
        ln -s "$dir/$lib" "$multi/$lib"
      fi
    done
  done
  rm -rf "$sysroot"
  mv "$sysroot.tmp" "$sysroot"
  echo "$want" > "$stamp"
fi

# --- qemu-user 10 from bookworm-backports ----------------------------------------------------------------
qemu="$base/qemu"
if [ ! -x "$qemu/usr/bin/qemu-aarch64" ]; then
  say "downloading qemu-user from bookworm-backports"
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get "${apt_opts[@]}" -o APT::Architecture=amd64 -qq download qemu-user/bookworm-backports)
  rm -rf "$qemu"
  mkdir -p "$qemu"
  dpkg -x "$tmp"/qemu-user_*.deb "$qemu"
  rm -rf "$tmp"
fi
"$qemu/usr/bin/qemu-aarch64" --version | head -n1 >&2

# --- aarch64 ONNX Runtime from the pinned wheel -----------------------------------------------------------
ort_version=$(sed -n 's/^ort_version=//p' "$root/tools/setup.sh")
ort_sha=$(sed -n 's/^ *aarch64) ort_plat=aarch64; ort_sha=\([0-9a-f]*\).*/\1/p' "$root/tools/setup.sh")
"$root/tools/fetch-ort.sh" "$ort_version" aarch64 "$ort_sha" "$base/onnxruntime"
say "ready: sysroot $sysroot, qemu $qemu/usr/bin/qemu-aarch64, ONNX Runtime $base/onnxruntime"
