"""FP16 graph accuracy: max vertex error against the FP32 graph and the PA-MPJPE change.

``python -m hmrt.export.fp16_report --model danet --variant edge --random-init`` (or
``--checkpoint P``) exports both graphs to a temporary folder and runs them in ONNX Runtime on
``--crops`` validation crops (synth-val when available). Two estimates of FP16 error, because ORT
CPU has no FP16 kernels for most ops (it runs them in FP32 on FP16-rounded inputs and drops the
casts between such nodes, so intermediate tensors are not all rounded):

* ``ort fp16 graph``: the exact FP16 graph in ORT CPU (FP16 weights/IO/boundaries);
* ``torch autocast fp16``: the torch model under CPU autocast FP16 with the same FP32 islands
  (Fp32Module), where conv/matmul outputs are FP16.

Neither is a TensorRT FP16 engine; rerun ``build_engine`` + the trt tests on a GPU for that.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np


def fp16_report(model, name: str, variant: str, crops: int = 16, batch: int = 4) -> dict:
    """Numbers for the FP16 graph of ``model`` (see the module docstring)."""
    from hmrt.export.onnx_export import ExportOptions, export_model
    from hmrt.export.parity import ort_outputs, pa_mpjpe_mm, torch_outputs, validation_crops

    data = validation_crops(crops, tuple(model.config.input_size))
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_model(model, Path(tmp) / "fp32.onnx", name, variant, ExportOptions())
        fp16 = export_model(model, Path(tmp) / "fp16.onnx", name, variant,
                            ExportOptions(precision="fp16", trt_version="11"))  # fmt: skip
        ref = ort_outputs(fp32.path, data.images, batch)
        half = ort_outputs(fp16.path, data.images, batch)
    auto = torch_outputs(model, data.images, batch, autocast_fp16=True)
    row = {"crops": data.source, "n": len(data.images)}
    for label, out in (("ort fp16 graph", half), ("torch autocast fp16", auto)):
        err = np.abs(out["vertices"] - ref["vertices"]).max()
        entry = {
            "max_vertex_error_m": float(err),
            "pa_mpjpe_vs_fp32_mm": pa_mpjpe_mm(out["joints3d"], ref["joints3d"]),
        }
        if data.joints3d is not None:
            entry["pa_mpjpe_change_mm"] = pa_mpjpe_mm(out["joints3d"], data.joints3d) - pa_mpjpe_mm(
                ref["joints3d"], data.joints3d
            )
        row[label] = entry
    return row


def main(argv: list[str] | None = None) -> int:
    """Command line: print the report as a small table."""
    from hmrt.export.parity import model_from_argv
    from hmrt.runtime.stats import machine_line

    src, args = model_from_argv(__doc__.splitlines()[0], argv)
    row = fp16_report(src.model, src.name, src.variant, args.crops)
    print(f"# {src.name}/{src.variant} weights={src.weights} crops={row['crops']} n={row['n']}")
    print(f"# machine: {machine_line()} (ONNX Runtime CPU)")
    print(
        "| estimate | max vertex error vs FP32 (m) | PA-MPJPE vs FP32 (mm) | PA-MPJPE change (mm) |"
    )
    print("| --- | --- | --- | --- |")
    for label in ("ort fp16 graph", "torch autocast fp16"):
        e = row[label]
        change = e.get("pa_mpjpe_change_mm")
        change = f"{change:+.3f}" if change is not None else "n/a (no ground truth)"
        print(
            f"| {label} | {e['max_vertex_error_m']:.2e} | {e['pa_mpjpe_vs_fp32_mm']:.4f} | "
            f"{change} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
