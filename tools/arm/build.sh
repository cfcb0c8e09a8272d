#!/usr/bin/env bash
# Cross-builds vigil for aarch64-unknown-linux-gnu (the printer's ARM board) and checks it under qemu-user.
#
#   tools/arm/build.sh            release build + bundle + smoke run of the bundle under qemu
#   tools/arm/build.sh --test     also the whole test suite, each test binary run under qemu-user
#   VIGIL_ARM_TEST_BINARIES=REGEX tools/arm/build.sh --test   only the test binaries whose names match
#
# tools/arm/sysroot.sh prepares the cross compiler, the arm64 sysroot (libturbojpeg), qemu-user 10 and the
# aarch64 ONNX Runtime library first (idempotent). Outputs, under $CARGO_TARGET_DIR (default target/):
#   aarch64-unknown-linux-gnu/release/vigil   the binary (finds libturbojpeg through $ORIGIN/../lib)
#   vigil-aarch64.tar.gz                      bin/vigil, lib/ (libonnxruntime, libturbojpeg and any other
#                                             sysroot library it links), models/failure-int8.onnx (what
#                                             vigil uses by default on aarch64) and models/failure.onnx
# Emulated times mean nothing: only correctness is checked here.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
want_test=0
[ "${1:-}" = "--test" ] && want_test=1
say() { printf 'arm: %s\n' "$*" >&2; }

tools/arm/sysroot.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
target=aarch64-unknown-linux-gnu
base="$root/.local/arm"
sysroot="$base/sysroot"
qemu="$base/qemu/usr/bin/qemu-aarch64"
multi="$sysroot/usr/lib/aarch64-linux-gnu"
# Absolute, so the wrapper script for `vigil` works from any test's working directory.
out=$(realpath -m "${CARGO_TARGET_DIR:-$root/target}")

export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
# libturbojpeg from the sysroot (crates/capture/build.rs), and OpenCV while a crate uses it, without
# pkg-config probing.
export VIGIL_TURBOJPEG_LIB_DIR="$multi"
export OPENCV_LINK_LIBS=opencv_core,opencv_imgproc,opencv_imgcodecs,opencv_videoio
export OPENCV_LINK_PATHS="$multi"
export OPENCV_INCLUDE_PATHS="$sysroot/usr/include/aarch64-linux-gnu/opencv4,$sysroot/usr/include/opencv4"
# Link against the sysroot's libraries (and their own dependencies); at run time look beside the binary.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C link-arg=--sysroot=$sysroot -C link-arg=-Wl,-rpath-link,$multi \
-C link-arg=-Wl,-rpath-link,$sysroot/lib/aarch64-linux-gnu -C link-arg=-Wl,-rpath,\$ORIGIN/../lib \
-C link-arg=-Wl,-rpath,\$ORIGIN/../../lib"
# Tests and the smoke run: every aarch64 program runs under qemu-user with the sysroot as its root.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="$qemu -L $sysroot"
export ORT_DYLIB_PATH_AARCH64="$base/onnxruntime/libonnxruntime.so"

say "building vigil (release) for $target"
cargo build --release --target "$target" -p vigil
bin="$out/$target/release/vigil"
file "$bin" >&2

# --- bundle -----------------------------------------------------------------------------------------
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/vigil/bin" "$stage/vigil/lib" "$stage/vigil/models"
cp "$bin" "$stage/vigil/bin/"
cp -P "$base"/onnxruntime/libonnxruntime.so* "$stage/vigil/lib/"
# The sysroot libraries the binary links directly (libturbojpeg, and OpenCV while a crate uses it); the
# rest of their dependencies come from the board's Debian packages.
for lib in $(aarch64-linux-gnu-readelf -d "$bin" | sed -n 's/.*Shared library: \[\(libturbojpeg[^]]*\|libopencv_[^]]*\)\].*/\1/p'); do
  cp -L "$multi/$lib" "$stage/vigil/lib/"
done
cp models/failure-int8.onnx models/failure.onnx "$stage/vigil/models/"
tar -C "$stage" -czf "$out/vigil-aarch64.tar.gz" vigil
say "bundle $out/vigil-aarch64.tar.gz ($(du -h "$out/vigil-aarch64.tar.gz" | cut -f1))"
glibc_need() { aarch64-linux-gnu-objdump -T "$1" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n1; }
for f in "$stage/vigil/bin/vigil" "$stage"/vigil/lib/*.so.*; do
  [ -L "$f" ] && continue
  say "$(basename "$f") needs $(glibc_need "$f")"
done

# --- smoke run of the bundle under qemu: the fixture clip, every frame analysed ----------------------------
say "smoke run of the bundle under qemu-user"
(cd "$stage/vigil" && "$qemu" -L "$sysroot" bin/vigil replay "$root/fixtures/footage/spaghetti.mkv" \
  --summary "$stage/summary.json") >&2
python3 - "$stage/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
assert s["read"] > 0 and s["analysed"] == s["read"] and s["detect_errors"] == 0, s
print(f"arm: smoke: read {s['read']}, analysed {s['analysed']}, events {s['events']}", file=sys.stderr)
PY

[ $want_test -eq 1 ] || exit 0
# --- the test suite under qemu-user ----------------------------------------------------------------------
# Each test binary runs under qemu-user in its package's folder, as `cargo test` would run it. Tests that start
# `vigil` (or the telemetry worker) find it behind a script that starts it under qemu (the kernel cannot run an aarch64 program
# without binfmt_misc); cargo is not run again afterwards, so the script stays in place until the end.
say "building the test suite for $target"
list=$(mktemp)
cargo test --release --target "$target" --workspace --no-run --message-format=json-render-diagnostics \
  | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("profile", {}).get("test") and m.get("executable"):
        print(m["manifest_path"].rsplit("/", 1)[0], m["executable"])
' > "$list"
rel="$out/$target/release"
# The programs tests start: vigil, and the worker the kill -9 tests kill.
wrapped="vigil vigil-telemetry-worker"
for b in $wrapped; do
  [ -f "$rel/$b" ] || continue
  cp "$rel/$b" "$rel/$b.aarch64"
  rm -f "$rel/$b"
  printf '#!/bin/sh\nexec %s -L %s %s "$@"\n' "$qemu" "$sysroot" "$rel/$b.aarch64" > "$rel/$b"
  chmod +x "$rel/$b"
done
say "running $(wc -l < "$list") test binaries under qemu-user ($($qemu --version | head -n1))"
failed=()
while read -r dir exe; do
  name=$(basename "$exe")
  # VIGIL_ARM_TEST_BINARIES (a grep -E pattern) runs only the test binaries whose names match.
  if [ -n "${VIGIL_ARM_TEST_BINARIES:-}" ] && ! grep -qE "$VIGIL_ARM_TEST_BINARIES" <<<"$name"; then
    continue
  fi
  # stdin from /dev/null: a server a test starts must not read the list this loop reads.
  if (cd "$dir" && ORT_DYLIB_PATH="$ORT_DYLIB_PATH_AARCH64" VIGIL_ROOT="$root" CARGO_MANIFEST_DIR="$dir" \
      "$qemu" -L "$sysroot" "$exe" --test-threads=2 ${VIGIL_ARM_TEST_FILTER:-}) > "$base/test-$name.log" 2>&1 \
      < /dev/null; then
    say "ok     $name: $(grep -h '^test result' "$base/test-$name.log" | tail -n1)"
  else
    failed+=("$name")
    say "FAILED $name: $(grep -h '^test result' "$base/test-$name.log" | tail -n1) (log: $base/test-$name.log)"
  fi
done < "$list"
rm -f "$list"
for b in $wrapped; do
  [ -f "$rel/$b.aarch64" ] && mv "$rel/$b.aarch64" "$rel/$b"
done
[ ${#failed[@]} -eq 0 ] || { say "failed: ${failed[*]}"; exit 1; }
say "every test binary passed under qemu-user"
