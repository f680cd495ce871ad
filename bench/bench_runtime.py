"""Benchmark of the lean runtime: pre/postprocessing alone, then models end to end.

Run from the repository root::

    python bench/bench_runtime.py                         # pre/post micro-benchmarks only
    python bench/bench_runtime.py --models danet_edge.onnx danet_paper.onnx
    python bench/bench_runtime.py --export-random         # exports DaNet edge + paper first

``--export-random`` runs ``hmrt export --model danet --variant V --random-init`` (random weights
are fine for speed) into ``--workdir``. End-to-end rows use ``hmrt bench``'s loop (decode ->
preprocess -> inference -> postprocess -> smoothing, rendering off) on ONNX Runtime CPU and
check the issue's targets: >= 25 FPS for DaNet-edge and pre+post < 10% of end-to-end time.
Prints markdown tables with the machine; warm-up excluded.
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from hmrt.runtime import camera
from hmrt.runtime.preprocess import Preprocessor
from hmrt.runtime.roi_tracker import RoiDecision, RoiTracker
from hmrt.runtime.stats import machine_description, machine_line

RES = 224
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _median_ms(fn, seconds: float) -> float:
    for _ in range(20):  # warm-up
        fn()
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 50:
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def micro(seconds: float) -> list[tuple[str, float]]:
    """Median ms of preprocessing (per frame size) and of postprocessing at 224x224."""
    rng = np.random.default_rng(0)
    pre = Preprocessor(RES, MEAN, STD)
    out = np.empty((3, RES, RES), np.float32)
    rows = []
    for w, h in ((640, 480), (1280, 720), (1920, 1080)):
        frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        box = np.array([w * 0.45, h * 0.5, h * 0.8])
        ms = _median_ms(lambda f=frame, b=box: pre(f, b, out), seconds)
        rows.append((f"preprocess {w}x{h} -> {RES}", ms))
    joints_crop = rng.uniform(40, 180, (24, 2)).astype(np.float32)
    cam = np.array([0.9, 0.05, 0.1], np.float32)
    box = np.array([600.0, 360.0, 500.0])
    K = camera.default_intrinsics(1280, 720)
    tracker = RoiTracker()
    decision = RoiDecision(box, "track")

    def post() -> None:
        j2 = camera.crop_to_image(joints_crop, box, RES)
        camera.crop_to_full_translation(cam, box, K)
        tracker.update(j2, decision, (720, 1280))

    rows.append((f"postprocess {RES} (2D + translation + tracker)", _median_ms(post, seconds)))
    return rows


def export_random(workdir: Path) -> list[Path]:
    """DaNet edge and paper with random weights, via the real ``hmrt export``."""
    paths = []
    for variant in ("edge", "paper"):
        out = workdir / f"danet_{variant}_random.onnx"
        if not out.is_file():
            cmd = [sys.executable, "-m", "hmrt", "export", "--model", "danet", "--variant",
                   variant, "--random-init", "--out", str(out)]  # fmt: skip
            print("+", " ".join(cmd[2:]), file=sys.stderr)
            subprocess.run(cmd, check=True)
        paths.append(out)
    return paths


def end_to_end(models: list[Path], threads: int, frames: int, warmup: int) -> list[dict]:
    """``hmrt bench``'s loop on ONNX Runtime CPU for each model, rendering off."""
    from hmrt.runtime import Reconstructor
    from hmrt.runtime.benchmark import run_benchmark

    rows = []
    for path in models:
        rec = Reconstructor(
            path,
            backend="onnxruntime-cpu",
            threads=threads,
            smoothing="default",
            refine_acquisition=False,
        )  # one inference per frame
        res = run_benchmark(rec, None, frames=frames, warmup=warmup)
        p50 = {s: float(np.median(v)) for s, v in res.stage_ms.items() if v}
        rows.append({"model": path.name, "name": rec.info.name, "fps": res.fps, "p50": p50,
                     "share": res.share("preprocess", "postprocess"), "backend": rec.backend})  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    """Print the machine and the benchmark tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", type=Path, default=[])
    parser.add_argument("--export-random", action="store_true")
    parser.add_argument("--workdir", type=Path, default=Path("hmrt_out/bench"))
    parser.add_argument("--threads", type=int, default=None, help="ORT threads (default: cores)")
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--repeat-seconds", type=float, default=2.0)
    args = parser.parse_args(argv)

    machine = machine_description()
    threads = args.threads or int(machine["cores"])
    print(f"# Runtime benchmark ({datetime.date.today().isoformat()})\n")
    print(f"machine: {machine_line(machine)}\n")
    print("| stage | median ms |\n| --- | ---: |")
    for name, ms in micro(args.repeat_seconds):
        print(f"| {name} | {ms:.3f} |")
    models = list(args.models)
    if args.export_random:
        args.workdir.mkdir(parents=True, exist_ok=True)
        models += export_random(args.workdir)
    if not models:
        return 0
    print(f"\nEnd to end, ONNX Runtime CPU, {threads} threads, 224x224, rendering off, "
          f"{args.frames} frames after {args.warmup} warm-up (p50 ms per stage):\n")  # fmt: skip
    print("| model | FPS | decode | pre | inference | post | smoothing | pre+post share |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in end_to_end(models, threads, args.frames, args.warmup):
        p = r["p50"]
        print(f"| {r['name']} ({r['model']}) | {r['fps']:.1f} | {p['decode']:.2f} | "
              f"{p['preprocess']:.2f} | {p['inference']:.2f} | {p['postprocess']:.2f} | "
              f"{p['smoothing']:.2f} | {100 * r['share']:.1f}% |")  # fmt: skip
    if hasattr(os, "getloadavg"):
        print(f"\n1-minute load average after the run: {os.getloadavg()[0]:.2f} "
              f"(on {machine['cores']} cores)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
