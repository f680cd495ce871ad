"""The pose-prior file: the trained VAE's encoder, its config and where it came from.

One ``torch.save`` dict of plain containers and tensors, read with ``weights_only=True`` (loading
a prior never runs code from the file)::

    format          "hmrt-pose-prior"
    version         1
    representation  "axis_angle_body23": the encoder's input (see hmrt.train.prior.vae)
    config          PosePriorConfig as a dict
    encoder         the encoder's state_dict (BatchNorm running statistics included)
    provenance      dict: what it was trained on, by which command, licence
    metrics         dict: final training/validation numbers (KL of sampled vs noise poses, ...)

The decoder is not stored: HKMR discards it after training (research seed-hkmr.md §1.7), and the
file stays small (~0.4 MB at the default size). Training checkpoints (``last.pt`` of
``hmrt train-prior``) hold the whole VAE.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from hmrt.runtime.atomic import atomic_path
from hmrt.runtime.errors import InputError
from hmrt.train.prior.vae import PosePriorConfig, PosePriorEncoder

FORMAT = "hmrt-pose-prior"
VERSION = 1
REPRESENTATION = "axis_angle_body23"
TRAIN_COMMAND = "hmrt train-prior --out runs/pose_prior"


def save_pose_prior(
    path: str | Path,
    encoder: PosePriorEncoder,
    provenance: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
) -> Path:
    """Write ``encoder`` as a prior file at ``path``, atomically (no half-written file on any
    failure); returns the path."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "representation": REPRESENTATION,
        "config": encoder.config.to_dict(),
        "encoder": {k: v.detach().cpu().clone() for k, v in encoder.state_dict().items()},
        "provenance": dict(provenance or {}),
        "metrics": dict(metrics or {}),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def read_pose_prior(path: str | Path) -> dict[str, Any]:
    """The prior file's dict, checked; :class:`InputError` naming the file and the fix."""
    p = Path(path)
    fix = f"train one with `{TRAIN_COMMAND}` and point loss.prior at its pose_prior.pt"
    if p.is_dir():
        raise InputError(f"pose prior {p} is a folder; pass the pose_prior.pt inside it")
    if not p.is_file():
        raise InputError(f"pose prior not found: {p}; {fix}")
    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(f"{p}: cannot read this pose prior ({type(exc).__name__}); {fix}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(f"{p}: not an hmrt pose-prior file; {fix}")
    if data.get("version") != VERSION or data.get("representation") != REPRESENTATION:
        raise InputError(
            f"{p}: pose prior version {data.get('version')} / {data.get('representation')}, "
            f"this hmrt reads version {VERSION} / {REPRESENTATION}; {fix}"
        )
    return data


def load_pose_prior(path: str | Path) -> PosePriorEncoder:
    """The frozen encoder of a prior file: eval mode (BatchNorm uses its running statistics,
    no dropout) and no parameter requires a gradient, so a loss through it trains only its
    input."""
    data = read_pose_prior(path)
    encoder = PosePriorEncoder(PosePriorConfig.from_dict(data["config"]))
    try:
        encoder.load_state_dict(data["encoder"])
    except RuntimeError as exc:
        raise InputError(f"{path}: the encoder weights do not match its config ({exc})") from exc
    encoder.eval()
    encoder.requires_grad_(False)
    return encoder
