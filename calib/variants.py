"""INT8 recipe variants side by side: range rule, per-channel or per-tensor weights, what stays
float, TensorRT graph vs ONNX Runtime's CPU recipe; accuracy against FP32 and CPU latency.

``python bench/bench_precision.py --variants [--checkpoint P] [--roi-pool gather]`` prints the
table (docs/PRECISION.md, "What was tried"). One calibration pass per range rule (the ranges
are cached), every variant scored on the same synth-val frames and timed round-robin. The FP32
graph is handed in (written by the export layer's ``variants_for_model`` in
:mod:`hmrt.export.precision_report`), so this module never imports hmrt.export.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from hmrt.calib.qdq import QuantizeOptions

VARIANTS: dict[str, QuantizeOptions] = {
    "entropy, per-channel": QuantizeOptions(method="entropy"),
    "minmax, per-channel (default)": QuantizeOptions(method="minmax"),
    "percentile 99.99, per-channel": QuantizeOptions(method="percentile"),
    "entropy, per-tensor weights": QuantizeOptions(method="entropy", per_channel=False),
    "entropy, Conv/Gemm only (no Add/MatMul)": QuantizeOptions(
        method="entropy", op_types=("Conv", "Gemm")
    ),
    "entropy, depthwise convs float": QuantizeOptions(method="entropy", float_depthwise=True),
    "entropy, first stage (backbone.s1) float": QuantizeOptions(
        method="entropy", exclude_groups=("backbone.s1",)
    ),
    "entropy, ORT CPU recipe": QuantizeOptions(method="entropy", target="onnxruntime-cpu"),
    "entropy, ORT CPU recipe, depthwise float": QuantizeOptions(
        method="entropy", target="onnxruntime-cpu", float_depthwise=True
    ),
    "entropy, ORT CPU recipe, backbone.s1 + iuv_heads float": QuantizeOptions(
        method="entropy", target="onnxruntime-cpu", exclude_groups=("backbone.s1", "iuv_heads")
    ),
}


def run_variants(fp32_onnx: Path, n: int, calib_n: int, threads: int = 1, runs: int = 40,
                 progress: bool = True) -> list[dict]:  # fmt: skip
    """Score every variant of :data:`VARIANTS` against the FP32 graph ``fp32_onnx``; rows with
    PA-MPJPE change, max vertex deviation, median latency (the TensorRT graphs timed in their ORT
    CPU form) and speed-up."""
    import onnx

    from hmrt.calib.data import (
        CALIB_SEED,
        calibration_images,
        open_calibration_source,
        preprocessor_from_onnx,
    )
    from hmrt.calib.latency import measure_latency
    from hmrt.calib.ort_cpu import uint8_activations
    from hmrt.calib.precision_report import (
        batched_outputs,
        eval_items,
        max_deviation_mm,
        pa_mpjpe_mm,
        root_relative_joints,
    )
    from hmrt.calib.qdq import quantize_to_qdq

    fp32 = Path(fp32_onnx)
    pre = preprocessor_from_onnx(fp32)
    crops = calibration_images(open_calibration_source("synth", calib_n, CALIB_SEED), pre,
                               progress)  # fmt: skip
    items = eval_items(n, pre, progress)
    images = np.stack([it["image"] for it in items])
    gt = root_relative_joints(items)
    ref = batched_outputs(str(fp32), images, threads)
    ref_pa = pa_mpjpe_mm(ref["joints3d"], gt)
    with tempfile.TemporaryDirectory(prefix="hmrt_variants_") as tmp:
        rows, timed = [], {"FP32": str(fp32)}
        for name, options in VARIANTS.items():
            path = Path(tmp) / f"v{len(rows)}.onnx"
            cache = Path(tmp) / f"ranges_{options.method}.json"
            quantize_to_qdq(fp32, path, crops, replace(options), "synth", cache, False)
            model = onnx.load(str(path))
            out = batched_outputs(model, images, threads)
            if options.target == "tensorrt":
                model, _ = uint8_activations(model)
            timed[name] = model
            dev = max_deviation_mm(out["vertices"], ref["vertices"])
            delta = pa_mpjpe_mm(out["joints3d"], gt) - ref_pa
            rows.append({"variant": name, "pa_delta": delta, "max_dev": dev})
        latency = measure_latency(timed, images[:1], threads, runs)
    for row in rows:
        lat = latency[row["variant"]]
        row["median_ms"] = lat.median_ms
        row["speedup"] = latency["FP32"].median_ms / lat.median_ms
    rows.insert(0, {"variant": "FP32", "pa_delta": 0.0, "max_dev": 0.0,
                    "median_ms": latency["FP32"].median_ms, "speedup": 1.0})  # fmt: skip
    return rows


def variants_markdown(rows: list[dict]) -> str:
    """The variants as a markdown table."""
    lines = [
        "| variant | PA-MPJPE change vs FP32 (mm) | max vertex dev. (mm) | ORT CPU ms (median) "
        "| speed-up |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['pa_delta']:+.2f} | {r['max_dev']:.1f} | "
            f"{r['median_ms']:.1f} | {r['speedup']:.2f}x |"
        )
    return "\n".join(lines) + "\n"
