"""ONNX Runtime vs PyTorch parity on validation crops, and the FP16 graph's accuracy change.

Crops come from ``synth-val`` (hmrt.train.data.validation) when its body model is available,
else from a deterministic random generator (the source is reported with every number).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn


@dataclass
class Crops:
    """Normalised model inputs and, for synth-val, ground-truth root-relative 3D joints."""

    images: np.ndarray  # (N, 3, H, W) float32
    joints3d: np.ndarray | None  # (N, 24, 3) metres, root-relative
    source: str


def validation_crops(n: int = 16, size: tuple[int, int] = (224, 224), seed: int = 0) -> Crops:
    """The first ``n`` synth-val crops rendered at ``size`` (square; e.g. 256 for HEMlets), or
    deterministic random crops when synth-val can't load."""
    try:
        from hmrt.train.data.augment import AugmentConfig
        from hmrt.train.data.validation import synth_val_dataset

        ds = synth_val_dataset(size=n, augment=AugmentConfig(res=int(size[0]), train=False))
        items = [ds[i] for i in range(n)]
        images = np.stack([np.asarray(it["image"], np.float32) for it in items])
        if images.shape[2:] == tuple(size):
            joints = np.stack([np.asarray(it["joints3d"], np.float32) for it in items])
            joints = joints - joints[:, :1]
            return Crops(images, joints, f"synth-val[0:{n}]")
    except Exception:
        pass
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 3, *size, generator=g).numpy()
    return Crops(images, None, f"random crops (seed {seed}; synth-val unavailable)")


def torch_outputs(
    model: nn.Module, images: np.ndarray, batch: int, autocast_fp16: bool = False
) -> dict[str, np.ndarray]:
    """Eval-mode outputs over ``images`` in batches of ``batch`` (optionally CPU autocast FP16)."""
    outs: dict[str, list[np.ndarray]] = {}
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = torch.from_numpy(images[i : i + batch])
            with torch.autocast("cpu", dtype=torch.float16, enabled=autocast_fp16):
                out = model(x)
            for k, v in out.items():
                outs.setdefault(k, []).append(v.float().numpy())
    return {k: np.concatenate(v) for k, v in outs.items()}


def ort_outputs(path: str | Path, images: np.ndarray, batch: int) -> dict[str, np.ndarray]:
    """ONNX Runtime (CPU) outputs over ``images`` in batches of ``batch``."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    outs: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for i in range(0, len(images), batch):
        for n, v in zip(names, sess.run(None, {"image": images[i : i + batch]})):
            outs[n].append(v)
    return {k: np.concatenate(v) for k, v in outs.items()}


def max_abs_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, float]:
    """Per shared output, the largest absolute difference (the optional contract outputs, e.g.
    ``pose_joints``, are compared whenever both sides have them)."""
    return {k: float(np.abs(a[k] - b[k]).max()) for k in a if k in b}


def pa_mpjpe_mm(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean PA-MPJPE in millimetres (``hmrt.runtime.metrics.pa_mpjpe`` returns mm per sample)."""
    from hmrt.runtime.metrics import pa_mpjpe

    return float(np.mean(pa_mpjpe(pred, gt)))


ROI_FORMS = (
    ("grid", {"roi_pool": "grid", "trt_version": "10"}),
    ("gather", {"roi_pool": "gather", "trt_version": "8.2"}),
    ("matmul", {"roi_pool": "matmul", "trt_version": "10"}),
)
"""DaNet's RoI-pooling forms (the other models have no RoI pooling: one graph for all three)."""
UV_FORMS = (
    ("scatter add, sample gather", {"uv_scatter": "add", "uv_sample": "gather"}),
    ("scatter matmul, sample gather", {"uv_scatter": "matmul", "trt_version": "8.6"}),
    ("scatter add, sample grid", {"uv_scatter": "add", "uv_sample": "grid"}),
)
"""DecoMR's and BoBW's image-to-UV scatter and UV-to-vertex sampling forms."""


def export_forms(model: nn.Module) -> tuple[tuple[str, dict], ...]:
    """The deployment forms a parity table covers: the UV forms for a model with an image-to-UV
    scatter (DecoMR, BoBW), else the RoI-pooling forms."""
    from hmrt.train.models.layers.uv_scatter import UVScatterMean

    uv = any(isinstance(m, UVScatterMean) for m in model.modules())
    return UV_FORMS if uv else ROI_FORMS


def parity_table(model: nn.Module, name: str, variant: str, crops: int = 16) -> list[dict]:
    """Max |ORT - torch| per output for every deployment form (:func:`export_forms`) at batch 1
    and 4."""
    import tempfile

    from hmrt.export.onnx_export import ExportOptions, export_model

    data = validation_crops(crops, tuple(model.config.input_size))
    ref = torch_outputs(model, data.images, 4)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, (form, options) in enumerate(export_forms(model)):
            path = Path(tmp) / f"form{k}.onnx"
            export_model(model, path, name, variant, ExportOptions(**options))
            for batch in (1, 4):
                got = ort_outputs(path, data.images, batch)
                diff = max_abs_diff(ref, got)
                if "pose_joints" in diff:
                    diff.update(pose_joints_diff(ref["pose_joints"], got["pose_joints"]))
                rows.append({"form": form, "batch": batch, "crops": data.source, **diff})
    return rows


def pose_joints_diff(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Largest |a - b| of ``pose_joints (N, P, 3)`` split by unit: ``pose_joints_px`` (x, y crop
    pixels) and ``pose_joints_m`` (z metres); one maximum over both would hide the metres."""
    d = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
    return {"pose_joints_px": float(d[..., :2].max()), "pose_joints_m": float(d[..., 2].max())}


def model_from_argv(description: str, argv: list[str] | None = None):
    """The model flags plus ``--crops`` / ``--body`` of the parity and FP16 reports, parsed and
    loaded; returns ``(ModelSource, args)``."""
    import argparse

    from hmrt.export.cli_export import add_model_arguments
    from hmrt.export.model_source import load_model

    ap = argparse.ArgumentParser(description=description)
    add_model_arguments(ap)
    ap.add_argument("--crops", type=int, default=16)
    ap.add_argument("--body", default=None, help="body model npz (default: the bundled one)")
    args = ap.parse_args(argv)
    src = load_model(args.model, args.variant, args.checkpoint, args.random_init, body=args.body)
    return src, args


def main(argv: list[str] | None = None) -> int:
    """``python -m hmrt.export.parity --model danet --variant edge --random-init``."""
    src, args = model_from_argv("ONNX Runtime vs PyTorch parity table", argv)
    rows = parity_table(src.model, src.name, src.variant, args.crops)
    print(f"# {src.name}/{src.variant} weights={src.weights} crops={rows[0]['crops']}")
    pose = "pose_joints" in rows[0]  # x, y px and z m share one max: split them for the table
    head = "| form | batch | vertices (m) | joints3d (m) | joints2d (px) | rotmats |"
    print(head + (" pose_joints (px, m) |" if pose else ""))
    print("| --- " * (6 + pose) + "|")
    for r in rows:
        line = (
            f"| {r['form']} | {r['batch']} | {r['vertices']:.2e} | {r['joints3d']:.2e} | "
            f"{r['joints2d']:.2e} | {r.get('rotmats', float('nan')):.2e} |"
        )
        if pose:
            line += f" {r['pose_joints_px']:.2e}, {r['pose_joints_m']:.2e} |"
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
