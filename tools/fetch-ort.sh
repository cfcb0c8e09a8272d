#!/usr/bin/env bash
# fetch-ort.sh VERSION ARCH SHA256 DEST: puts libonnxruntime.so from PyPI's onnxruntime wheel (cp311,
# manylinux_2_28, ARCH = x86_64 | aarch64) into DEST, after checking the wheel's sha256. Idempotent.
set -euo pipefail
version=$1 arch=$2 sha=$3 dest=$4
stamp="$dest/.wheel-sha256"
if [ -f "$dest/libonnxruntime.so" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$sha" ]; then
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "setup: downloading onnxruntime==$version ($arch) from PyPI" >&2
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 --implementation cp \
  --platform "manylinux_2_28_$arch" --platform "manylinux_2_27_$arch" --platform "manylinux_2_17_$arch" \
  -d "$tmp" "onnxruntime==$version" >&2
whl=$(ls "$tmp"/onnxruntime-*.whl)
got=$(sha256sum "$whl" | cut -d' ' -f1)
if [ "$got" != "$sha" ]; then
  echo "setup: $whl has sha256 $got, expected $sha" >&2
  exit 1
fi
mkdir -p "$dest"
python3 - "$whl" "$dest" <<'PY'
import os, sys, zipfile
whl, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    libs = [n for n in z.namelist() if "/capi/libonnxruntime.so" in n]
    if not libs:
        sys.exit("no libonnxruntime.so in " + whl)
    for n in libs:
        data = z.read(n)
        out = os.path.join(dest, os.path.basename(n))
        with open(out + ".tmp", "wb") as f:
            f.write(data)
        os.replace(out + ".tmp", out)
    real = sorted(os.path.basename(n) for n in libs)[-1]
    link = os.path.join(dest, "libonnxruntime.so")
    if real != "libonnxruntime.so":
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(real, link)
PY
echo "$sha" > "$stamp"
