#!/usr/bin/env python3
"""Makes models/failure-int8.onnx from models/failure.onnx with ONNX Runtime static quantisation (QDQ, int8
weights per channel, uint8 activations), calibrated on 256 images of the training cache (.traindata, built by
tools/train_failure_model.py --prepare-only; never footage). Seeded: the same command gives the same file.

    .local/train-venv/bin/python tools/quantize_failure_model.py [--model IN] [--out OUT] [--cache DIR] [--n N]
"""
import argparse
import json
from pathlib import Path

import cv2
import numpy as np
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process


class Reader(CalibrationDataReader):
    def __init__(self, files, size):
        self.files, self.size, self.i = files, size, 0

    def get_next(self):
        if self.i >= len(self.files):
            return None
        im = cv2.cvtColor(cv2.imread(str(self.files[self.i]), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        self.i += 1
        x = cv2.resize(im, (self.size, self.size), interpolation=cv2.INTER_AREA).astype(np.float32)
        return {"image": x.transpose(2, 0, 1)[None]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=Path("models/failure.onnx"))
    ap.add_argument("--out", type=Path, default=Path("models/failure-int8.onnx"))
    ap.add_argument("--cache", type=Path, default=Path(".traindata"))
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    items = json.loads((args.cache / "meta.json").read_text())["items"]
    pick = np.random.default_rng(args.seed).choice(len(items), min(args.n, len(items)), replace=False)
    files = [args.cache / "img" / items[i]["file"] for i in sorted(pick)]
    pre = args.out.with_suffix(".pre.onnx")
    quant_pre_process(str(args.model), str(pre))
    quantize_static(str(pre), str(args.out), Reader(files, 192), quant_format=QuantFormat.QDQ,
                    per_channel=True, weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)
    pre.unlink()
    print(f"{args.out}: {args.out.stat().st_size} bytes")


if __name__ == "__main__":
    main()
