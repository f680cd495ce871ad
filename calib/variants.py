"""INT8 recipe variants side by side: range rule, per-channel or per-tensor weights, what stays
float, TensorRT graph vs ONNX Runtime's CPU recipe; accuracy against FP32 and CPU latency.

``python bench/bench_precision.py --variants [--checkpoint P] [--roi-pool gather]`` prints the
table (docs/PRECISION.md, "What was tried"). One calibration pass per range rule (the ranges
are cached), every variant scored on the same synth-val frames and timed round-robin.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from hmrt.calib.qdq import QuantizeOptions

VARIANTS: dict[str, QuantizeOptions] = {
    "entropy, per-channel (default)": QuantizeOptions(method="entropy"),
    "minmax, per-channel": QuantizeOptions(method="minmax"),
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


def run_variants(source, n: int, calib_n: int, roi_pool: str | None, threads: int = 1,
                 runs: int = 40, progress: bool = True) -> list[dict]:  # fmt: skip
    """Score every variant of :data:`VARIANTS`; rows with PA-MPJPE change, max vertex deviation,
    median latency (the TensorRT graphs timed in their ORT CPU form) and speed-up."""
    import onnx

    from hmrt.calib.data import (
        CALIB_SEED,
        calibration_images,
        open_calibration_source,
        preprocessor_from_onnx,
    )
    from hmrt.calib.latency import measure_latency
    from hmrt.calib.ort_cpu import uint8_activations
    from hmrt.calib.precision_report import eval_items, max_deviation_mm, ort_predictor
    from hmrt.calib.qdq import quantize_to_qdq
    from hmrt.export.onnx_export import ExportOptions, export_model
    from hmrt.runtime import metrics as M

    with tempfile.TemporaryDirectory(prefix="hmrt_variants_") as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        export_model(source.model, fp32, source.name, source.variant,
                     ExportOptions(roi_pool=roi_pool))  # fmt: skip
        pre = preprocessor_from_onnx(fp32)
        crops = calibration_images(open_calibration_source("synth", calib_n, CALIB_SEED), pre,
                                   progress)  # fmt: skip
        items = eval_items(n, pre, progress)
        images = np.stack([it["image"] for it in items])
        gt = np.stack([it["joints3d"] for it in items]).astype(np.float64)
        gt -= gt[:, :1]

        def outputs(model) -> dict[str, np.ndarray]:
            predict = ort_predictor(model, threads)
            parts = [predict(images[i : i + 16]) for i in range(0, len(images), 16)]
            return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

        def pa(out) -> float:
            j = out["joints3d"].astype(np.float64)
            return float(np.mean(M.pa_mpjpe(j - j[:, :1], gt)))

        ref = outputs(str(fp32))
        rows, timed = [], {"FP32": str(fp32)}
        for name, options in VARIANTS.items():
            path = Path(tmp) / f"v{len(rows)}.onnx"
            cache = Path(tmp) / f"ranges_{options.method}.json"
            quantize_to_qdq(fp32, path, crops, replace(options), "synth", cache, False)
            model = onnx.load(str(path))
            out = outputs(model)
            if options.target == "tensorrt":
                model, _ = uint8_activations(model)
            timed[name] = model
            dev = max_deviation_mm(out["vertices"], ref["vertices"])
            rows.append({"variant": name, "pa_delta": pa(out) - pa(ref), "max_dev": dev})
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
