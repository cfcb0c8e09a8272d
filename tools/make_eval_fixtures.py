#!/usr/bin/env python3
"""Makes the small labelled sets that `vigil eval` runs on in the tests (needs python3-numpy, python3-opencv):

  fixtures/eval/images/normal/*.jpg    4 frames of the synthetic normal print (tools/make_fixtures.py's scene)
  fixtures/eval/images/failure/*.jpg   4 frames of the synthetic spaghetti scene, after the part came loose

fixtures/eval/footage.toml (written by hand) labels fixtures/footage/*.mkv. Deterministic: run it again and
the files stay the same.
"""
import os
import sys

import cv2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import normal_frames, spaghetti_frames  # noqa: E402


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "eval", "images")
    jpg = [cv2.IMWRITE_JPEG_QUALITY, 85]
    normal, spag = normal_frames(24), spaghetti_frames(24)
    for name, frames, picks in (("normal", normal, (0, 8, 16, 23)), ("failure", spag, (8, 13, 18, 23))):
        os.makedirs(os.path.join(out, name), exist_ok=True)
        for i in picks:
            cv2.imwrite(os.path.join(out, name, f"{name}-{i:02d}.jpg"), frames[i], jpg)


if __name__ == "__main__":
    main()
