"""BoBW warm-started from a trained DecoMR of the same widths (``init_modules``).

BoBW's DMP is DecoMR's CNet plus three dense heads and its UVI is DecoMR's UVNet with more
input and output channels (seed-bobw.md §1.1), so a trained DecoMR gives both a start:

* ``dmp: DECOMR.pt:cnet``: every CNet tensor by name; the dense heads keep their fresh init;
* ``uvi: DECOMR.pt:lnet``: every LNet tensor by name except two, which are widened. The first
  1x1 conv (``uv_conv1.0``) gets zero columns for the 18 DMP and IK map channels DecoMR lacks,
  so the UVI starts out ignoring them and computes DecoMR's features; the output conv
  (``uv_end.1``) gives LNet's location map to both the location and the joint map (a joint map
  equal to the surface is the closest start the location map offers) and zero to the
  displacement map. With ``uvi_residual`` off the UVI then reproduces DecoMR's mesh at step 0;
  with it on, its output is a correction of the IK maps and LNet's absolute map does not fit,
  so that setting is refused.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from hmrt.runtime.errors import InputError
from hmrt.train.models.bobw.uvi import UV_MAPS

UVI_EXTRA_MAPS = 2 * UV_MAPS
"""UVI input channels DecoMR's LNet lacks: the DMP and IK UV maps, 9 each."""


def adapt_from_decomr(
    config: Any,
    prefix: str,
    src_prefix: str,
    picked: dict[str, Tensor],
    own: dict[str, Tensor],
    path: str,
) -> dict[str, Tensor]:
    """``picked`` (DecoMR tensors renamed under ``prefix.``) made to fit BoBW's ``own``."""
    src_top = src_prefix.split(".")[-1]
    if prefix == "dmp" and src_top == "cnet":
        fresh = {k: v for k, v in own.items() if k.startswith("dmp.dense_heads.")}
        return {**picked, **fresh}
    if prefix != "uvi" or src_top != "lnet":
        return picked
    if config.uvi_residual:
        raise InputError(
            f"{path}: DecoMR's LNet gives an absolute location map, but this BoBW's UVI predicts "
            "a correction of the IK maps; set model_overrides: {uvi_residual: false}"
        )
    if not (config.uvi_global and config.uvi_ref_map):
        raise InputError(
            f"{path}: DecoMR's LNet input holds the global feature and the reference map; "
            "keep uvi_global and uvi_ref_map on to warm-start the UVI from it"
        )
    out = dict(picked)
    key = "uvi.uv_conv1.0.weight"
    src, want = picked[key], own[key]
    keep = config.warp_channels + 3  # the transferred feature [F, x, y, occupancy]
    if src.shape[1] + UVI_EXTRA_MAPS != want.shape[1] or src.shape[0] != want.shape[0]:
        raise InputError(
            f"{path}: {src_prefix}.uv_conv1.0.weight is {tuple(src.shape)}, the UVI's is "
            f"{tuple(want.shape)} (a different width?)"
        )
    widened = torch.zeros_like(want)
    widened[:, :keep] = src[:, :keep]
    widened[:, keep + UVI_EXTRA_MAPS :] = src[:, keep:]
    out[key] = widened
    for name in ("weight", "bias"):
        key = f"uvi.uv_end.1.{name}"
        src = picked[key]
        if src.shape[0] != 3:
            raise InputError(f"{path}: {src_prefix}.uv_end.1.{name} does not end in 3 channels")
        out[key] = torch.cat([src, src, torch.zeros_like(src)], dim=0)
    return out


__all__ = ["UVI_EXTRA_MAPS", "adapt_from_decomr"]
