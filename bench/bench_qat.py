"""QAT benchmark: FP32, PTQ INT8 and QAT INT8 PA-MPJPE of DaNet-edge on synth-val (ONNX Runtime).

Run from the repository root after ``hmrt calibrate --qat`` (docs/PRECISION.md,
"Quantization-aware training"), keep it niced on a shared machine::

    nice -n 10 python bench/bench_qat.py --run-dir runs/qat_edge --n 512

Graphs (all written into ``--work``, default ``<run-dir>/bench``): the FP32 export of the
original checkpoint and of ``qat.pt`` (same ``--roi-pool``), the PTQ graph of the original
(``hmrt calibrate`` on 512 synth crops, entropy and minmax ranges), the QAT graph from
``qat_ranges.npz`` (the same Q/DQ writer), and with ``--ptq-on-qat`` the PTQ graph of the QAT
weights (entropy ranges, to separate what the weights and the ranges each bring). Accuracy uses the precision report's
functions (:mod:`hmrt.calib.precision_report`): the first ``--n`` synth-val frames through the
runtime preprocessing, joints from ONNX Runtime CPU, PA-MPJPE / MPJPE in mm.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Export, quantize, evaluate; print a markdown table (and ``--json``)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", type=Path, required=True, help="hmrt calibrate --qat run dir")
    ap.add_argument("--checkpoint", default="assets/weights/danet_edge.pt", help="the original")
    ap.add_argument("--n", type=int, default=512, help="synth-val frames (default 512)")
    ap.add_argument("--calib-n", type=int, default=512, help="PTQ calibration crops")
    ap.add_argument("--roi-pool", default="matmul", help="RoI pooling form of the exports")
    ap.add_argument("--work", type=Path, default=None, help="folder for the graphs")
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers as JSON")
    ap.add_argument(
        "--ptq-methods",
        default="entropy,minmax",
        help="range rules of the PTQ graphs of the original weights (default entropy,minmax)",
    )
    ap.add_argument(
        "--ptq-on-qat",
        action="store_true",
        help="also the PTQ graph of the QAT weights (entropy ranges: a second calibration pass)",
    )
    args = ap.parse_args(argv)

    import numpy as np

    from hmrt.calib.data import CALIB_SEED, calibration_images, open_calibration_source
    from hmrt.calib.data import preprocessor_from_onnx as pre_of
    from hmrt.calib.precision_report import (
        batched_outputs,
        eval_items,
        pa_mpjpe_mm,
        root_relative_joints,
    )
    from hmrt.calib.qat_ranges import write_qat_qdq
    from hmrt.calib.qdq import QuantizeOptions, quantize_to_qdq
    from hmrt.export.onnx_export import ExportOptions, export_model
    from hmrt.runtime import metrics as M
    from hmrt.train.checkpoint import load_checkpoint, read_checkpoint

    t0 = time.perf_counter()
    work = args.work or args.run_dir / "bench"
    work.mkdir(parents=True, exist_ok=True)
    graphs: dict[str, Path] = {}
    for tag, ckpt in (("fp32", args.checkpoint), ("qat_fp32", args.run_dir / "qat.pt")):
        path = work / f"{tag}.onnx"
        if tag != "fp32" or not path.is_file():  # the QAT weights change between runs
            export_model(
                load_checkpoint(ckpt), path, "danet", "edge", ExportOptions(roi_pool=args.roi_pool)
            )
        graphs[tag] = path
    source = open_calibration_source("synth", args.calib_n, CALIB_SEED, None)
    crops = calibration_images(source, pre_of(graphs["fp32"]), True)
    methods = [m.strip() for m in args.ptq_methods.split(",") if m.strip()]
    ptq = [(f"ptq_{m}_int8", graphs["fp32"], m) for m in methods]
    if args.ptq_on_qat:
        ptq.append(("qat_weights_ptq_entropy_int8", graphs["qat_fp32"], "entropy"))
    for tag, fp32, method in ptq:
        path = work / f"{tag}.onnx"
        if tag.startswith("qat") or not path.is_file():  # the original's graphs are reused
            options = QuantizeOptions(method=method)
            quantize_to_qdq(fp32, path, crops, options, source.description)
        graphs[tag] = path
    path = work / "qat_int8.onnx"
    # Fallback ranges (tensors QAT did not observe) from 64 crops: only unquantized tensors
    # normally take them, so a short pass suffices (the count is printed).
    _, match = write_qat_qdq(
        graphs["qat_fp32"],
        args.run_dir / "qat_ranges.npz",
        path,
        crops[:64],
        True,
        source.description,
    )
    graphs["qat_int8"] = path

    items = eval_items(args.n, pre_of(graphs["fp32"]))
    images = np.stack([it["image"] for it in items])
    gt = root_relative_joints(items)
    rows = {}
    for tag, path in graphs.items():
        joints = batched_outputs(path, images)["joints3d"].astype(np.float64)
        rows[tag] = {
            "pa_mpjpe": pa_mpjpe_mm(joints, gt),
            "mpjpe": float(np.mean(M.mpjpe(joints, gt))),
        }
    step = read_checkpoint(args.run_dir / "qat.pt").get("qat", {}).get("step")
    print(
        f"synth-val[0:{args.n}], QAT step {step}, RoI pooling {args.roi_pool}; "
        f"{len(match.matched)} tensors with QAT ranges, {len(match.fallback_quantized)} "
        f"quantized ones on minmax fallback; {time.perf_counter() - t0:.0f} s\n"
    )
    print("| graph | PA-MPJPE (mm) | vs FP32 | MPJPE (mm) |\n| --- | ---: | ---: | ---: |")
    base = rows["fp32"]["pa_mpjpe"]
    for tag, r in rows.items():
        print(f"| {tag} | {r['pa_mpjpe']:.1f} | {r['pa_mpjpe'] - base:+.1f} | {r['mpjpe']:.1f} |")
    if args.json:
        args.json.write_text(json.dumps({"n": args.n, "step": step, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
