#!/usr/bin/env python3
"""Side-by-side speed and memory of vigil, measured in one run on the same frames and model, printed as ratios.

    tools/bench.py [--threads 1] [--cpus 0] [--reps 3] [--short 50] [--long 400] [--footage FILE]

For the 640x480 footage (../shared/data/footage/scythe/normal-print-10s.mkv, else the fixture clip) and a
1080p version of it (made with ffmpeg into .local/bench/, never committed), each of these runs as its own
process pinned with `taskset -c CPUS`, on a short and a long clip (the footage looped), REPS times, in turn:

  limit   bare ONNX Runtime inference of the model on tensors made beforehand (`vigil-perf limit`)
  vigil   `vigil replay` end to end (decode, preprocess, infer, judge, privacy gate, output)
  python  tools/bench/baseline.py: opencv-python decode + resize + normalise, onnxruntime-python
          (pinned in tools/bench/requirements.txt, installed into .local/bench-venv from PyPI)

All three run with the fp32 model (--model) and again with each models/*int8*.onnx (the model the ARM build
uses by default), so each ratio compares the same model; --no-int8 skips the int8 rows.

Start-up is excluded: the cost per frame is the difference of wall times (long - short) over the difference of
frame counts; the median over the repetitions is used. Peak RSS is each process's own (wait4). Then the
per-stage costs (`vigil-perf stages`) on the same frames. Results go to stdout (markdown) and
.local/bench/results.json.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / ".local" / "bench"
VENV = ROOT / ".local" / "bench-venv"


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def ensure_venv():
    req = ROOT / "tools" / "bench" / "requirements.txt"
    stamp = VENV / ".requirements"
    if stamp.exists() and stamp.read_text() == req.read_text():
        return VENV / "bin" / "python"
    log(f"creating {VENV} with {req.name}")
    run([sys.executable, "-m", "venv", str(VENV)])
    run([str(VENV / "bin" / "pip"), "install", "-q", "-r", str(req)])
    stamp.write_text(req.read_text())
    return VENV / "bin" / "python"


def target_dir():
    return Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))


def build():
    log("building vigil and vigil-perf (release)")
    run(["cargo", "build", "--release", "-q", "-p", "vigil", "-p", "vigil-benches", "--bin", "vigil", "--bin",
         "vigil-perf"], cwd=ROOT)
    rel = target_dir() / "release"
    return rel / "vigil", rel / "vigil-perf"


def ffmpeg(args):
    run(["ffmpeg", "-loglevel", "error", "-y", *args])


def clips(src: Path, tag: str, short: int, long: int, scale: str | None):
    """Short and long MJPEG clips of `src` (looped), optionally scaled; made once into .local/bench."""
    LOCAL.mkdir(parents=True, exist_ok=True)
    base = LOCAL / f"{tag}.mkv"
    if not base.exists():
        vf = ["-vf", f"scale={scale}:flags=lanczos"] if scale else []
        codec = ["-c:v", "mjpeg", "-q:v", "3", "-pix_fmt", "yuvj420p"] if scale else ["-c", "copy"]
        ffmpeg(["-i", str(src), *vf, *codec, str(base)])
    out = []
    for n in (short, long):
        p = LOCAL / f"{tag}-{n}.mkv"
        if not p.exists():
            ffmpeg(["-stream_loop", "-1", "-i", str(base), "-frames:v", str(n), "-c", "copy", str(p)])
        out.append(p)
    return out


def timed(cmd, env=None):
    """Runs cmd; returns (wall seconds, peak RSS MiB, stdout)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(map(str, cmd))}\n{err.decode(errors='replace')}")
    return wall, ru.ru_maxrss / 1024.0, out.decode()


def measure(name, make_cmd, short, long, reps, results):
    """Per-frame seconds (start-up excluded) and peak RSS of the long run, median over reps."""
    per, rss, extra = [], [], []
    for _ in range(reps):
        ws, _, _ = timed(make_cmd(short))
        wl, rl, out = timed(make_cmd(long))
        per.append((wl - ws) / (long[1] - short[1]))
        rss.append(rl)
        extra.append(out)
    results[name] = {"ms_per_frame": statistics.median(per) * 1e3, "all_ms": [p * 1e3 for p in per],
                     "peak_rss_mb": max(rss), "last_output": extra[-1]}
    log(f"{name}: {results[name]['ms_per_frame']:.3f} ms/frame (runs {', '.join(f'{p*1e3:.3f}' for p in per)}), "
        f"peak RSS {max(rss):.1f} MiB")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cpus", default="0", help="taskset CPU list (default: one core, 0)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--short", type=int, default=50)
    ap.add_argument("--long", type=int, default=400)
    ap.add_argument("--footage", type=Path)
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "failure.onnx")
    ap.add_argument("--no-1080p", action="store_true")
    ap.add_argument("--no-int8", action="store_true", help="skip the rows for the int8 model")
    ap.add_argument("--no-build", action="store_true", help="use the release binaries already built")
    a = ap.parse_args()

    footage = a.footage or ROOT.parent / "shared/data/footage/scythe/normal-print-10s.mkv"
    if not footage.exists():
        footage = ROOT / "fixtures/footage/spaghetti.mkv"
        log(f"shared footage absent: using {footage}")
    py = ensure_venv()
    if a.no_build:
        rel = target_dir() / "release"
        vigil, perf = rel / "vigil", rel / "vigil-perf"
    else:
        vigil, perf = build()
    pin = ["taskset", "-c", a.cpus]
    cfg = Path(tempfile.mkdtemp()) / "bench.toml"
    # Consent stays off (the default consent file does not exist here): the privacy gate runs but keeps nothing.
    cfg.write_text(f"[detector]\ntype = \"onnx\"\nthreads = {a.threads}\n\n[privacy]\n"
                   f"consent_file = \"{cfg.parent / 'consent.json'}\"\n")
    sets = [("640x480", None)] + ([] if a.no_1080p else [("1080p", "1920:1080")])
    report = {"threads": a.threads, "cpus": a.cpus, "reps": a.reps, "footage": str(footage),
              "model": str(a.model), "host": os.uname().nodename, "cpu": cpu_name(), "sets": {}}
    models = [("fp32", a.model)] + ([] if a.no_int8 else
                                    [("int8", m) for m in sorted((ROOT / "models").glob("*int8*.onnx"))])
    for tag, scale in sets:
        short_p, long_p = clips(footage, f"{footage.stem}-{tag}", a.short, a.long, scale)
        short, long = (short_p, a.short), (long_p, a.long)
        log(f"{tag}: {a.short} vs {a.long} frames, {a.reps} repetitions, threads {a.threads}, cpus {a.cpus}")
        r = {}
        # Interleaved: each tool's short and long runs follow each other, tools take turns per repetition.
        for rep in range(a.reps):
            one = {}
            for kind, model in models:
                sfx = "" if kind == "fp32" else f"@{kind}"
                measure(f"limit{sfx}", lambda c, m=model: [*pin, perf, "--model", m, "--threads", str(a.threads),
                                                           "limit", c[0], "--frames", str(c[1])], short, long, 1, one)
                measure(f"vigil{sfx}", lambda c, m=model, sfx=sfx: [
                    *pin, vigil, "--config", cfg, "--model", m, "replay", c[0],
                    "--summary", LOCAL / f"summary-{tag}{sfx}-{c[1]}.json"], short, long, 1, one)
                measure(f"python{sfx}", lambda c, m=model: [*pin, py, ROOT / "tools/bench/baseline.py", m, c[0],
                                                            "--threads", str(a.threads)], short, long, 1, one)
            for k, v in one.items():
                r.setdefault(k, {"runs_ms": [], "peak_rss_mb": 0.0})
                r[k]["runs_ms"] += v["all_ms"]
                r[k]["peak_rss_mb"] = max(r[k]["peak_rss_mb"], v["peak_rss_mb"])
        for v in r.values():
            v["ms_per_frame"] = statistics.median(v["runs_ms"])
        for kind, _ in models:
            sfx = "" if kind == "fp32" else f"@{kind}"
            r[f"vigil{sfx}"]["summary"] = json.loads((LOCAL / f"summary-{tag}{sfx}-{a.long}.json").read_text())
        _, _, st = timed([*pin, perf, "--model", a.model, "--threads", str(a.threads), "stages", long_p,
                          "--frames", "100"])
        r["stages"] = json.loads(st)
        report["sets"][tag] = r
    LOCAL.mkdir(parents=True, exist_ok=True)
    (LOCAL / "results.json").write_text(json.dumps(report, indent=2))
    print_table(report, a)


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def print_table(report, a):
    print(f"\nthreads {report['threads']}, taskset -c {report['cpus']}, {report['cpu']}; "
          f"start-up excluded ({a.long} - {a.short} frames), median of {report['reps']} runs\n")
    print("| footage, model | limit ms/frame | vigil ms/frame | python ms/frame | vigil / limit frames/s | "
          "vigil beyond inference / python's | vigil / python frames/s | vigil p50 / p99 ms | "
          "peak RSS vigil / python MiB (ratio) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for tag, r in report["sets"].items():
        for sfx in [k[5:] for k in r if k.startswith("vigil")]:
            lim, vig, py = (r[k + sfx]["ms_per_frame"] for k in ("limit", "vigil", "python"))
            s = r["vigil" + sfx]["summary"]
            beyond_v, beyond_p = vig - lim, py - lim
            rv, rp = r["vigil" + sfx]["peak_rss_mb"], r["python" + sfx]["peak_rss_mb"]
            print(f"| {tag} {sfx[1:] or 'fp32'} | {lim:.2f} | {vig:.2f} | {py:.2f} | {lim / vig:.2f}x | "
                  f"{beyond_v:.2f} / {beyond_p:.2f} = {beyond_v / beyond_p:.2f}x | {py / vig:.2f}x | "
                  f"{s['interval_ms_p50']:.2f} / {s['interval_ms_p99']:.2f} | "
                  f"{rv:.1f} / {rp:.1f} ({rv / rp:.2f}x) |")
        if "limit@int8" in r:
            print(f"| {tag}: int8 speed-up of bare inference | {r['limit']['ms_per_frame'] / r['limit@int8']['ms_per_frame']:.2f}x |"
                  " | | | | | | |")
    print("\nper stage, ms/frame (vigil-perf stages, 100 frames of the long clip):\n")
    keys = ["decode_video_ms", "decode_jpeg_full_ms", "decode_jpeg_reduced_ms", "preprocess_ms", "infer_ms",
            "score_ms", "redact_encode_ms", "zstd_record_ms", "spool_write_bundle_ms"]
    print("| footage | " + " | ".join(k.removesuffix("_ms") for k in keys) + " |")
    print("|---|" + "---|" * len(keys))
    for tag, r in report["sets"].items():
        st = r["stages"]
        print(f"| {tag} | " + " | ".join(f"{st[k]:.3f}" if k in st else "-" for k in keys) + " |")


if __name__ == "__main__":
    main()
