"""Distances and label-aware averaging shared by every loss term.

A batch mixes samples with and without a given label (``has_smpl``, ``has_3d``, ``has_iuv``,
per-joint visibility), so every term is a weighted mean whose weights are those masks: samples
without the label contribute nothing and do not dilute the others. A batch with no labelled
sample gives an exact zero that still belongs to the graph (DDP needs every rank to backward
through the same parameters).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pointwise(pred: torch.Tensor, target: torch.Tensor, norm: str) -> torch.Tensor:
    """Element-wise distance ``norm`` (``l1``, ``mse`` or ``smooth_l1`` with beta 1)."""
    if norm == "l1":
        return (pred - target).abs()
    if norm == "mse":
        return (pred - target).square()
    if norm == "smooth_l1":
        return F.smooth_l1_loss(pred, target, reduction="none", beta=1.0)
    raise ValueError(f"unknown norm {norm!r}")


def sample_mask(mask: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """Broadcast a per-sample mask ``(N,)`` (or ``(N, ...)``) to the rank of ``like``."""
    if mask is None:
        return torch.ones(like.shape[:1], dtype=like.dtype, device=like.device).view(
            -1, *([1] * (like.dim() - 1))
        )
    m = mask.to(device=like.device, dtype=like.dtype)
    return m.reshape(*m.shape, *([1] * (like.dim() - m.dim())))


def weighted_mean(err: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """``sum(err * w) / sum(w)`` with ``w`` broadcast to ``err``; 0 (in the graph) if ``sum(w)==0``.

    Computed in float32 so that fp16 autocast cannot overflow the sums.
    """
    err = err.float()
    if weight is None:
        return err.mean()
    w = weight.float().expand_as(err)
    # No host sync: an all-zero mask gives 0 / tiny = 0, any real weight sum is far above it.
    return (err * w).sum() / w.sum().clamp(min=1e-6)


def sample_sum_mean(err: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``sum(err * weight)`` per sample, averaged over the samples with any non-zero weight.

    A paper's sum-reduced term with hmrt's label-aware batch mean (HEMlets, HKMR); exactly 0
    (still in the graph) when no sample is labelled. Float32, so autocast cannot overflow the sums.
    """
    err = err.float()
    w = weight.float().expand_as(err)
    per = (err * w).flatten(1).sum(dim=1)
    has = (w.flatten(1).sum(dim=1) > 0).float()
    return (per * has).sum() / has.sum().clamp(min=1.0)


def combine_masks(*masks: torch.Tensor | None) -> torch.Tensor | None:
    """Product of the masks that are present (None when none is)."""
    out = None
    for m in masks:
        if m is None:
            continue
        m = m.float()
        out = m if out is None else out * m
    return out


def weighted_total(
    terms: dict, weights: dict[str, float], pred: dict, batch: dict, skipped: set[str]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``sum(weight * term)`` over the terms with a non-zero weight, and each computed term's raw
    value (detached, for logging). A term returning None (its labels are absent) is added to
    ``skipped``. With nothing applicable the total is a zero that still depends on the outputs,
    so backward stays legal. ``terms`` maps a name to ``fn(pred, batch, cache)``; ``cache`` is
    shared by the terms of one call (intermediate maps computed once)."""
    cache: dict = {}
    total = None
    raw: dict[str, torch.Tensor] = {}
    for name, fn in terms.items():
        weight = weights.get(name, 0.0)
        if weight == 0:
            continue
        value = fn(pred, batch, cache)
        if value is None:
            skipped.add(name)
            continue
        raw[name] = value.detach()
        total = weight * value if total is None else total + weight * value
    if total is None:
        anchor = next(v for v in pred.values() if isinstance(v, torch.Tensor) and v.requires_grad)
        total = anchor.sum() * 0.0
    return total, raw
