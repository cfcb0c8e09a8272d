#!/usr/bin/python3
"""Makes the footage and images in fixtures/ from nothing: synthetic printer scenes drawn with OpenCV and
encoded with ffmpeg, plus broken files for the error paths. Deterministic (seeded); run it again to get the
same pictures. Needs python3-numpy, python3-opencv and ffmpeg (Debian packages).

    /usr/bin/python3 tools/make_fixtures.py [--out fixtures]

What it writes (all 640x480 unless noted):
  footage/normal.mkv        MJPEG, 24 frames at 1 fps: a part growing layer by layer on a bed
  footage/spaghetti.mkv     MJPEG, 24 frames: the same print turning into a tangle of loose filament
  footage/normal.mp4        H.264 version of normal.mkv
  frames/                   8 JPEG frames of the spaghetti scene, for folder input
  images/normal.jpg, images/spaghetti.jpg, images/gray-spaghetti.png   stills for `vigil detect`
  bad/not-a-video.mkv       text, not a video
  bad/truncated.mkv         spaghetti.mkv cut to 45% of its bytes
  bad/corrupt-frame.mkv     normal.mkv with frame 5's JPEG start marker destroyed
  bad/frames/               4 good frames and one corrupt JPEG (frame 2)
  bad/corrupt.jpg           a JPEG with its header destroyed
"""
import argparse
import os
import shutil
import subprocess
import tempfile

import cv2
import numpy as np

W, H = 640, 480
FILAMENT = (40, 120, 235)  # BGR orange PLA


def bed_scene(rng):
    img = np.zeros((H, W, 3), np.uint8)
    img[:] = (38, 36, 34)
    # enclosure back wall with a vertical gradient
    grad = np.linspace(70, 30, 220).astype(np.uint8)
    img[:220] = np.stack([grad, grad, grad + 4], axis=1)[:, None, :].clip(0, 255)
    # bed: a trapezoid in perspective, textured
    bed = np.array([[90, 440], [550, 440], [470, 230], [170, 230]], np.int32)
    cv2.fillPoly(img, [bed], (70, 72, 78))
    noise = rng.normal(0, 6, (H, W, 1)).astype(np.int16)
    mask = np.zeros((H, W), np.uint8)
    cv2.fillPoly(mask, [bed], 255)
    img = np.where(mask[..., None] > 0, (img.astype(np.int16) + noise).clip(0, 255), img).astype(np.uint8)
    for x in range(180, 470, 40):  # grid printed on the sheet
        cv2.line(img, (x, 232), (int(320 + (x - 320) * 1.55), 438), (82, 84, 90), 1, cv2.LINE_AA)
    # gantry bar and hotend
    cv2.rectangle(img, (0, 120), (W, 140), (25, 25, 28), -1)
    return img


def draw_part(img, layers):
    # a box on the bed, drawn layer by layer with visible layer lines
    x0, x1, base = 270, 370, 360
    for i in range(layers):
        y = base - i * 3
        shade = 0.75 + 0.25 * ((i % 2) == 0)
        color = tuple(int(c * shade) for c in FILAMENT)
        cv2.rectangle(img, (x0, y - 3), (x1, y), color, -1)
        cv2.rectangle(img, (x1, y - 3), (x1 + 22, y - 8), tuple(int(c * 0.55) for c in FILAMENT), -1)
    return base - layers * 3


def draw_hotend(img, x, y):
    cv2.rectangle(img, (x - 22, 140), (x + 22, y - 18), (40, 40, 44), -1)
    cv2.rectangle(img, (x - 14, y - 18), (x + 14, y - 6), (0, 140, 200), -1)
    pts = np.array([[x - 6, y - 6], [x + 6, y - 6], [x, y]], np.int32)
    cv2.fillPoly(img, [pts], (30, 170, 210))


def draw_spaghetti(img, rng, strands, cx, cy, spread):
    for _ in range(strands):
        p = np.array([cx, cy], float) + rng.normal(0, spread * 0.4, 2)
        pts = [p.copy()]
        ang = rng.uniform(0, 2 * np.pi)
        for _ in range(rng.integers(25, 60)):
            ang += rng.normal(0, 0.5)
            p = p + 4.0 * np.array([np.cos(ang), np.sin(ang) * 0.7])
            p[0] = np.clip(p[0], cx - spread, cx + spread)
            p[1] = np.clip(p[1], cy - spread * 0.7, cy + spread * 0.5)
            pts.append(p.copy())
        poly = np.array(pts, np.int32).reshape(-1, 1, 2)
        shade = rng.uniform(0.55, 1.15)
        color = tuple(int(min(255, c * shade)) for c in FILAMENT)
        cv2.polylines(img, [poly], False, color, int(rng.integers(2, 4)), cv2.LINE_AA)
        cv2.polylines(img, [poly], False, tuple(int(min(255, c * 1.3)) for c in FILAMENT), 1, cv2.LINE_AA)


def finish(img, rng, i):
    img = cv2.GaussianBlur(img, (3, 3), 0.8)
    noise = rng.normal(0, 3, img.shape).astype(np.int16)
    img = (img.astype(np.int16) + noise).clip(0, 255).astype(np.uint8)
    cv2.putText(img, f"{i:04d}", (560, 470), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (200, 200, 200), 1, cv2.LINE_AA)
    return img


def normal_frames(n, seed=1):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        img = bed_scene(np.random.default_rng(seed + 100))
        top = draw_part(img, 2 + i * 2)
        draw_hotend(img, 300 + int(40 * np.sin(i)), top - 1)
        out.append(finish(img, rng, i))
    return out


def spaghetti_frames(n, seed=2):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        img = bed_scene(np.random.default_rng(seed + 100))
        top = draw_part(img, 12)
        # after a few frames the part comes loose: strands pile up under the nozzle
        strands = 0 if i < 3 else 6 + (i - 3) * 5
        draw_spaghetti(img, np.random.default_rng(seed * 1000 + i), strands, 320, top - 30, 40 + 4 * i)
        draw_hotend(img, 320, top - 60)
        out.append(finish(img, rng, i))
    return out


def encode(frames, path, codec):
    with tempfile.TemporaryDirectory() as tmp:
        for i, f in enumerate(frames):
            cv2.imwrite(os.path.join(tmp, f"{i:04d}.png"), f)
        args = ["ffmpeg", "-loglevel", "error", "-y", "-framerate", "1", "-i", os.path.join(tmp, "%04d.png")]
        if codec == "mjpeg":
            args += ["-c:v", "mjpeg", "-q:v", "4", "-pix_fmt", "yuvj420p"]
        else:
            args += ["-c:v", "libx264", "-preset", "medium", "-crf", "23", "-pix_fmt", "yuv420p", "-g", "6"]
        args += ["-fflags", "+bitexact", "-flags:v", "+bitexact", "-map_metadata", "-1", path]
        subprocess.run(args, check=True)


def destroy_jpeg_in_container(src, dst, frame):
    data = bytearray(open(src, "rb").read())
    starts = []
    pos = 0
    while True:
        pos = data.find(b"\xff\xd8\xff", pos)
        if pos < 0:
            break
        starts.append(pos)
        pos += 3
    if frame >= len(starts):
        raise SystemExit(f"{src} has only {len(starts)} JPEG frames")
    s = starts[frame]
    data[s : s + 600] = bytes(600)  # SOI, tables and frame header gone
    open(dst, "wb").write(bytes(data))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "fixtures"))
    out = os.path.abspath(ap.parse_args().out)
    for sub in ["footage", "frames", "images", "bad"]:
        shutil.rmtree(os.path.join(out, sub), ignore_errors=True)
        os.makedirs(os.path.join(out, sub))
    normal, spag = normal_frames(24), spaghetti_frames(24)
    encode(normal, f"{out}/footage/normal.mkv", "mjpeg")
    encode(spag, f"{out}/footage/spaghetti.mkv", "mjpeg")
    encode(normal, f"{out}/footage/normal.mp4", "h264")
    jpg = [cv2.IMWRITE_JPEG_QUALITY, 88]
    for i, f in enumerate(spag[:8]):
        cv2.imwrite(f"{out}/frames/frame-{i:03d}.jpg", f, jpg)
    cv2.imwrite(f"{out}/images/normal.jpg", normal[20], jpg)
    cv2.imwrite(f"{out}/images/spaghetti.jpg", spag[20], jpg)
    cv2.imwrite(f"{out}/images/gray-spaghetti.png", cv2.cvtColor(spag[22], cv2.COLOR_BGR2GRAY))
    open(f"{out}/bad/not-a-video.mkv", "w").write("this is not a video\n" * 20)
    whole = open(f"{out}/footage/spaghetti.mkv", "rb").read()
    open(f"{out}/bad/truncated.mkv", "wb").write(whole[: int(len(whole) * 0.45)])
    destroy_jpeg_in_container(f"{out}/footage/normal.mkv", f"{out}/bad/corrupt-frame.mkv", 5)
    os.makedirs(f"{out}/bad/frames")
    for i, f in enumerate(normal[:5]):
        cv2.imwrite(f"{out}/bad/frames/frame-{i:03d}.jpg", f, jpg)
    good = bytearray(open(f"{out}/bad/frames/frame-002.jpg", "rb").read())
    good[0:400] = bytes(400)
    open(f"{out}/bad/frames/frame-002.jpg", "wb").write(bytes(good))
    open(f"{out}/bad/corrupt.jpg", "wb").write(bytes(good))
    print(f"fixtures written to {out}")


if __name__ == "__main__":
    main()
