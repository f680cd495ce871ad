"""INT8 speed in ONNX Runtime CPU: FP32 vs the INT8 graphs, model only, batch 1 and 8.

Run from the repository root (niced: the machine is shared)::

    nice -n 10 python bench/bench_int8_speed.py                          # DaNet-edge, bundled
    nice -n 10 python bench/bench_int8_speed.py --variant paper --random-init

Graphs (all from one calibration, ``--calib-n`` synth crops; ranges do not change the speed):

* ``FP32``: the exported graph (``--roi-pool matmul`` by default, the fastest CPU form);
* ``INT8 TensorRT Q/DQ, as written``: the file ``hmrt calibrate`` writes (symmetric int8, Q/DQ on
  the inputs of the quantized ops), run by ORT as it is;
* ``INT8 TensorRT Q/DQ, ORT CPU form``: the same graph after
  :func:`hmrt.calib.ort_cpu.uint8_activations` (Qs moved up to their producers, uint8 codes,
  ReLU/ReLU6 as integer Clips): the same values, ORT's fused int8 kernels;
* ``INT8 ORT CPU recipe``: ``hmrt calibrate --target onnxruntime-cpu`` (uint8, asymmetric; not
  loadable by TensorRT).

Timing is interleaved (one run of each graph in turn, ``--runs`` rounds, after warm-up) so load
from other users hits every graph alike; the median is reported with the 1-minute load average
before and after. A benchmark, never a test.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def interleaved(
    sessions: dict, x: np.ndarray, runs: int, warmup: int = 3
) -> dict[str, tuple[float, float]]:
    """(median, 10th percentile) milliseconds per call of each session on ``x``, the graphs
    alternating every run."""
    feeds = {k: {s.get_inputs()[0].name: x} for k, s in sessions.items()}
    for k, s in sessions.items():
        for _ in range(warmup):
            s.run(None, feeds[k])
    times: dict[str, list[float]] = {k: [] for k in sessions}
    for _ in range(runs):
        for k, s in sessions.items():
            t0 = time.perf_counter()
            s.run(None, feeds[k])
            times[k].append((time.perf_counter() - t0) * 1e3)
    return {k: (float(np.median(v)), float(np.percentile(v, 10))) for k, v in times.items()}


def build_graphs(args: argparse.Namespace, folder: Path) -> tuple[dict[str, object], str]:
    """Export FP32, calibrate the INT8 graphs; ``({name: path or ModelProto}, weights text)``."""
    import onnx
    import torch

    from hmrt.calib.data import (
        CALIB_SEED,
        calibration_images,
        open_calibration_source,
        preprocessor_from_onnx,
    )
    from hmrt.calib.ort_cpu import uint8_activations
    from hmrt.calib.qdq import QuantizeOptions, quantize_to_qdq
    from hmrt.export.model_source import load_model
    from hmrt.export.onnx_export import ExportOptions, export_model

    torch.set_num_threads(1)
    src = load_model(args.model, args.variant, args.checkpoint, args.random_init)
    fp32 = folder / "fp32.onnx"
    export_model(src.model, fp32, src.name, src.variant, ExportOptions(roi_pool=args.roi_pool))
    crops = calibration_images(
        open_calibration_source("synth", args.calib_n, CALIB_SEED),
        preprocessor_from_onnx(fp32),
        progress=False,
    )
    cache = folder / "ranges.json"
    trt = folder / "int8_tensorrt.onnx"
    cpu = folder / "int8_ort_recipe.onnx"
    quantize_to_qdq(fp32, trt, crops, QuantizeOptions(), "synth", cache, progress=False)
    recipe = QuantizeOptions(target="onnxruntime-cpu")
    quantize_to_qdq(fp32, cpu, None, recipe, "synth", cache, progress=False)
    cpu_form, _ = uint8_activations(onnx.load(str(trt)))
    weights = "random init (speed only: accuracy not meaningful)"
    if not args.random_init:
        path = Path(src.weights_path or "")
        if path.is_absolute() and path.is_relative_to(Path.cwd()):
            path = path.relative_to(Path.cwd())
        weights = f"{src.weights} `{path}`"
    graphs = {
        "FP32": str(fp32),
        "INT8 TensorRT Q/DQ, as written": str(trt),
        "INT8 TensorRT Q/DQ, ORT CPU form": cpu_form,
        "INT8 ORT CPU recipe": str(cpu),
    }
    return graphs, weights


def main(argv: list[str] | None = None) -> int:
    """Build the graphs, time them at each batch, print a markdown table."""
    from hmrt.calib.latency import cpu_session
    from hmrt.runtime.stats import machine_line

    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="bench_int8_speed.py", description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="danet")
    ap.add_argument("--variant", default="edge")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--random-init", action="store_true")
    ap.add_argument("--roi-pool", choices=("grid", "gather", "matmul"), default="matmul")
    ap.add_argument("--calib-n", type=int, default=64)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--runs", type=int, default=60, help="timed rounds at batch 1")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="hmrt_int8_speed_") as tmp:
        graphs, weights = build_graphs(args, Path(tmp))
        sessions = {k: cpu_session(g, args.threads) for k, g in graphs.items()}
        size = sessions["FP32"].get_inputs()[0].shape[2:]
        rows: dict[int, tuple[dict[str, tuple[float, float]], str, str]] = {}
        for batch in (int(b) for b in args.batches.split(",")):
            x = np.random.default_rng(0).standard_normal((batch, 3, *size)).astype(np.float32)
            before = f"{os.getloadavg()[0]:.1f}"
            runs = max(8, args.runs // batch)
            rows[batch] = (interleaved(sessions, x, runs), before, f"{os.getloadavg()[0]:.1f}")
    cmd = shlex.join(["python", "bench/bench_int8_speed.py", *argv])
    print(
        f"Command: `{cmd}`; {args.model}-{args.variant}, weights: {weights}; ONNX Runtime "
        f"CPU, {args.threads} thread(s), model only, interleaved runs (speed-up of medians); "
        f"machine: "
        f"{machine_line()}; {datetime.date.today().isoformat()}.\n"
    )
    batches = list(rows)
    head = " | ".join(f"batch {b} ms median (p10) | speed-up" for b in batches)
    print(f"| graph | {head} |")
    print("| --- |" + " ---: | ---: |" * len(batches))
    for name in graphs:
        cells = []
        for b in batches:
            ms = rows[b][0]
            med, p10 = ms[name]
            cells.append(f"{med:.1f} ({p10:.1f}) | {ms['FP32'][0] / med:.2f}x")
        print(f"| {name} | {' | '.join(cells)} |")
    loads = "; ".join(f"batch {b}: {rows[b][1]} -> {rows[b][2]}" for b in batches)
    print(f"\nLoad average (1 min) before -> after: {loads}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
