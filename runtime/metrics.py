"""Accuracy metrics for 3D human mesh recovery: MPJPE, PA-MPJPE, PVE and 2D PCK (numpy only).

Units: 3D inputs are in **metres**, 3D results are in **millimetres** (the unit papers report).
2D inputs and thresholds are in pixels. Every function accepts one sample ``(J, 3)`` or a batch
``(N, J, 3)`` and returns one value per sample (a float for one sample, ``(N,)`` for a batch), so
callers average over a dataset themselves (``errors.mean()``).

Alignment conventions (as in HMR/SPIN evaluation):

* :func:`mpjpe` and :func:`pve` subtract a root before comparing (``root=0``, the pelvis, by
  default; ``root=None`` compares as given). Model outputs are already root-relative.
* :func:`pa_mpjpe` aligns the prediction to the ground truth with the similarity transform
  (rotation, uniform scale, translation) that minimises the squared error (Umeyama/Procrustes).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "evaluate_3d",
    "mpjpe",
    "pa_mpjpe",
    "pck_2d",
    "procrustes_align",
    "pve",
]

_MM = 1000.0


def _batched(a: np.ndarray, name: str, last: int) -> tuple[np.ndarray, bool]:
    """Return ``a`` as float64 ``(N, J, last)`` and whether the input was a single sample."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 2:
        return a[None], True
    if a.ndim != 3 or a.shape[-1] != last:
        raise ValueError(f"{name} must have shape (J, {last}) or (N, J, {last}), got {a.shape}")
    return a, False


def _weights(weights: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """Per-point weights ``(N, J)`` (1 everywhere when ``weights`` is None)."""
    if weights is None:
        return np.ones(shape)
    w = np.asarray(weights, dtype=np.float64)
    w = np.broadcast_to(w if w.ndim == 2 else w[None], shape)
    return w


def _mean_dist(pred: np.ndarray, gt: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """Weighted mean Euclidean distance per sample; NaN where a sample has zero total weight."""
    w = _weights(weights, pred.shape[:2])
    d = np.linalg.norm(pred - gt, axis=-1)
    total = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (d * w).sum(axis=1) / np.where(total > 0, total, 1), np.nan)


def _out(values: np.ndarray, single: bool) -> np.ndarray | float:
    return float(values[0]) if single else values


def mpjpe(
    pred: np.ndarray,
    gt: np.ndarray,
    root: int | None = 0,
    weights: np.ndarray | None = None,
) -> np.ndarray | float:
    """Mean per-joint position error in mm after subtracting joint ``root`` from both sides.

    ``weights`` (J,) or (N, J) select or weight joints (e.g. SPIN's 3D joint confidence).
    """
    p, single = _batched(pred, "pred", 3)
    g, _ = _batched(gt, "gt", 3)
    if root is not None:
        p = p - p[:, root : root + 1]
        g = g - g[:, root : root + 1]
    return _out(_mean_dist(p, g, weights) * _MM, single)


def pve(
    pred_vertices: np.ndarray,
    gt_vertices: np.ndarray,
    pred_root: np.ndarray | None = None,
    gt_root: np.ndarray | None = None,
) -> np.ndarray | float:
    """Per-vertex error in mm; optional roots (3,) or (N, 3) are subtracted first.

    Pass the pelvis joints as roots when the vertices are not already root-relative.
    """
    p, single = _batched(pred_vertices, "pred_vertices", 3)
    g, _ = _batched(gt_vertices, "gt_vertices", 3)
    if pred_root is not None:
        p = p - np.asarray(pred_root, dtype=np.float64).reshape(-1, 1, 3)
    if gt_root is not None:
        g = g - np.asarray(gt_root, dtype=np.float64).reshape(-1, 1, 3)
    return _out(_mean_dist(p, g, None) * _MM, single)


def procrustes_align(
    pred: np.ndarray, gt: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """Return ``pred`` mapped by the best similarity transform (s R x + t) onto ``gt``.

    Batched closed form (Umeyama 1991): SVD of the weighted cross-covariance with a reflection
    fix, so the result is a proper rotation. Degenerate inputs (all points equal) give a zero
    scale instead of NaN.
    """
    p, single = _batched(pred, "pred", 3)
    g, _ = _batched(gt, "gt", 3)
    w = _weights(weights, p.shape[:2])
    wsum = np.maximum(w.sum(axis=1, keepdims=True), 1e-12)[..., None]  # (N,1,1)
    wn = w[..., None] / wsum
    mu_p = (wn * p).sum(axis=1, keepdims=True)
    mu_g = (wn * g).sum(axis=1, keepdims=True)
    p0, g0 = p - mu_p, g - mu_g
    var_p = (wn * p0**2).sum(axis=(1, 2))
    cov = np.einsum("nj,nja,njb->nab", wn[..., 0], g0, p0)  # (N,3,3) = sum w g p^T
    u, s, vt = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(u @ vt))
    d = np.where(d == 0, 1.0, d)
    fix = np.ones((p.shape[0], 3))
    fix[:, 2] = d
    rot = u @ (fix[:, :, None] * vt)
    scale = (s * fix).sum(axis=1) / np.maximum(var_p, 1e-12)
    scale = np.where(var_p > 1e-12, scale, 0.0)
    aligned = scale[:, None, None] * np.einsum("nab,njb->nja", rot, p0) + mu_g
    return aligned[0] if single else aligned


def pa_mpjpe(
    pred: np.ndarray, gt: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray | float:
    """MPJPE in mm after Procrustes alignment (rotation, scale, translation) of pred to gt."""
    p, single = _batched(pred, "pred", 3)
    g, _ = _batched(gt, "gt", 3)
    aligned = procrustes_align(p, g, weights)
    return _out(_mean_dist(aligned, g, weights) * _MM, single)


def pck_2d(
    pred: np.ndarray,
    gt: np.ndarray,
    threshold: float,
    visibility: np.ndarray | None = None,
    bbox: np.ndarray | None = None,
) -> np.ndarray | float:
    """Fraction of visible 2D keypoints within ``threshold`` of the ground truth.

    Without ``bbox`` the threshold is in pixels. With ``bbox`` (4,) or (N, 4) as x0, y0, x1, y1 it
    is relative to the box size: a keypoint counts when its error is at most
    ``threshold * max(box width, box height)`` (e.g. 0.05 for PCK@0.05). ``gt`` may carry the
    visibility as a third column; ``visibility`` (J,) or (N, J) overrides it. Samples with no
    visible keypoint give NaN.
    """
    p, single = _batched(np.asarray(pred)[..., :2], "pred", 2)
    g_full = np.asarray(gt, dtype=np.float64)
    g_full = g_full[None] if g_full.ndim == 2 else g_full
    g = g_full[..., :2]
    if visibility is not None:
        vis = _weights(visibility, g.shape[:2]) > 0
    elif g_full.shape[-1] >= 3:
        vis = g_full[..., 2] > 0
    else:
        vis = np.ones(g.shape[:2], dtype=bool)
    thr = np.full(g.shape[0], float(threshold))
    if bbox is not None:
        b = np.asarray(bbox, dtype=np.float64).reshape(-1, 4)
        thr = threshold * np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
    ok = (np.linalg.norm(p - g, axis=-1) <= thr[:, None]) & vis
    n = vis.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(n > 0, ok.sum(axis=1) / np.maximum(n, 1), np.nan)
    return _out(frac, single)


def evaluate_3d(
    pred_joints: np.ndarray,
    gt_joints: np.ndarray,
    pred_vertices: np.ndarray | None = None,
    gt_vertices: np.ndarray | None = None,
) -> dict[str, float]:
    """Dataset means in mm: ``mpjpe``, ``pa_mpjpe`` and, given vertices, ``pve``.

    Vertices are compared root-relative with the pelvis (joint 0) of each side subtracted.
    """
    out = {
        "mpjpe": float(np.nanmean(mpjpe(pred_joints, gt_joints))),
        "pa_mpjpe": float(np.nanmean(pa_mpjpe(pred_joints, gt_joints))),
    }
    if pred_vertices is not None and gt_vertices is not None:
        pj = np.asarray(pred_joints).reshape(-1, *np.shape(pred_joints)[-2:])
        gj = np.asarray(gt_joints).reshape(-1, *np.shape(gt_joints)[-2:])
        out["pve"] = float(np.nanmean(pve(pred_vertices, gt_vertices, pj[:, 0], gj[:, 0])))
    return out
