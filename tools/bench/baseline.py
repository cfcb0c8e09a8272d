#!/usr/bin/env python3
"""The Python baseline: what Python print-failure detectors do per frame (OpenCV decode, resize and
normalise in numpy, ONNX Runtime inference), on the same model, frames and thread count as vigil.

    baseline.py MODEL VIDEO --threads N [--frames N]

Prints one JSON object: frames, wall_s (reading + processing, after start-up), infer_s (inside
session.run), peak_rss_mb.
"""
import argparse
import json
import resource
import time

import cv2
import numpy as np
import onnxruntime as ort


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("video")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--frames", type=int, default=0, help="stop after this many frames (0: all)")
    a = ap.parse_args()

    cv2.setNumThreads(a.threads)
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
    size = sess.get_inputs()[0].shape[2]

    cap = cv2.VideoCapture(a.video, cv2.CAP_FFMPEG)
    if not cap.isOpened():
        raise SystemExit(f"cannot open {a.video}")
    n = 0
    infer = 0.0
    total = 0.0
    started = time.perf_counter()
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        small = cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)
        rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
        x = np.ascontiguousarray(rgb.transpose(2, 0, 1)[None].astype(np.float32))
        t0 = time.perf_counter()
        score, _heat = sess.run(None, {"image": x})
        infer += time.perf_counter() - t0
        total += float(score[0])
        n += 1
        if a.frames and n >= a.frames:
            break
    wall = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"what": "python", "frames": n, "wall_s": wall, "infer_s": infer,
                      "checksum": total, "threads": a.threads, "peak_rss_mb": rss,
                      "versions": {"onnxruntime": ort.__version__, "opencv": cv2.__version__,
                                   "numpy": np.__version__}}))


if __name__ == "__main__":
    main()
