#!/usr/bin/python3
"""Writes crates/detect/tests/data: OpenCV's INTER_AREA resize of real frames to the model input, the
reference vigil's own preprocessing (crates/detect/src/preprocess.rs) is tested against.

Needs python3-opencv and python3-numpy (Debian's); the frames come from ../shared/data. Two real frames are
stored (gray.png: a scythe footage frame; color.png: an Ender bed camera photo, cropped), both 640x480. Every
case's input is derived from one of them by integer nearest-neighbour index mapping (row y takes base row
y * base_h // h, column x base column x * base_w // w), which the Rust test repeats exactly, so only the
bases and the 192x192 outputs are stored. cases.txt lists: name, base, width, height, pixel format, output.
Run from the repository root: tools/make_preprocess_fixtures.py
"""

import os
import sys

import cv2
import numpy as np

SIZE = 192
OUT = "crates/detect/tests/data"
SHARED = "../shared/data"
GRAY_SOURCE = (f"{SHARED}/footage/scythe/spaghetti-10s.mkv", 60)
COLOR_SOURCE = f"{SHARED}/images/more/ender-bedcam/normal/sample_images__ender_91__ender_91_16.jpg"

# name, base, width, height, format (as vigil_frame::PixelFormat)
CASES = [
    ("gray-640x480", "gray", 640, 480, "gray8"),
    ("bgr-640x480", "color", 640, 480, "bgr8"),
    ("rgb-640x480", "color", 640, 480, "rgb8"),
    ("bgr-1000x750", "color", 1000, 750, "bgr8"),
    ("bgr-1920x1080", "color", 1920, 1080, "bgr8"),
    ("gray-480x270", "gray", 480, 270, "gray8"),
    ("bgr-320x240", "color", 320, 240, "bgr8"),
    ("gray-384x384", "gray", 384, 384, "gray8"),
    ("gray-197x640", "gray", 197, 640, "gray8"),
    ("bgr-240x135", "color", 240, 135, "bgr8"),
    ("gray-100x80", "gray", 100, 80, "gray8"),
    ("bgr-100x80", "color", 100, 80, "bgr8"),
    ("bgr-1x1", "color", 1, 1, "bgr8"),
]


def derive(base, w, h):
    bh, bw = base.shape[:2]
    rows = (np.arange(h) * bh) // h
    cols = (np.arange(w) * bw) // w
    return base[rows][:, cols]


def main():
    if not os.path.isdir(SHARED):
        sys.exit(f"{SHARED} is missing")
    os.makedirs(OUT, exist_ok=True)
    path, index = GRAY_SOURCE
    cap = cv2.VideoCapture(path)
    cap.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, frame = cap.read()
    if not ok:
        sys.exit(f"cannot read frame {index} of {path}")
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    photo = cv2.imread(COLOR_SOURCE)
    if photo is None:
        sys.exit(f"cannot read {COLOR_SOURCE}")
    y0, x0 = (photo.shape[0] - 480) // 2, (photo.shape[1] - 640) // 2
    color = np.ascontiguousarray(photo[y0 : y0 + 480, x0 : x0 + 640])
    bases = {"gray": gray, "color": color}
    for name, img in bases.items():
        cv2.imwrite(f"{OUT}/{name}.png", img, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    lines = []
    for name, base, w, h, fmt in CASES:
        img = derive(bases[base], w, h)
        if fmt == "rgb8":
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        out = cv2.resize(img, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
        if fmt == "rgb8":
            out = cv2.cvtColor(out, cv2.COLOR_RGB2BGR)
        # Gray outputs are stored as gray (the same value in all three planes); colour ones from BGR order, so
        # that the PNG reads back as R, G, B.
        cv2.imwrite(f"{OUT}/{name}.png", out, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        lines.append(f"{name} {base} {w} {h} {fmt} {name}.png")
    with open(f"{OUT}/cases.txt", "w") as f:
        f.write(f"# made by tools/make_preprocess_fixtures.py with OpenCV {cv2.__version__}; output {SIZE}x{SIZE}, RGB or gray\n")
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
