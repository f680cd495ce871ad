"""Body-model losses: rotation matrices, shape, orthogonality, vertices and the camera scale."""

from __future__ import annotations

import torch

from hmrt.train.losses.reduce import pointwise, sample_mask, weighted_mean


def rotmat_loss(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None, norm: str = "mse"
) -> torch.Tensor:
    """Element-wise distance of rotation matrices ``(N, J, 3, 3)`` (official code: MSE)."""
    err = pointwise(pred.float(), target.float(), norm)
    return weighted_mean(err, sample_mask(mask, err))


def betas_loss(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None, norm: str = "mse"
) -> torch.Tensor:
    """Shape coefficient distance ``(N, B)``."""
    err = pointwise(pred.float(), target.float(), norm)
    return weighted_mean(err, sample_mask(mask, err))


def orthogonality_loss(rotmats: torch.Tensor) -> torch.Tensor:
    """Mean squared deviation of ``R R^T`` from the identity (the paper's L_orth).

    Zero up to rounding for 6D (Gram-Schmidt) heads; it matters for the 9D head, whose raw
    matrices are not orthonormalised.
    """
    r = rotmats.float()
    eye = torch.eye(3, device=r.device, dtype=r.dtype)
    return (r @ r.transpose(-1, -2) - eye).square().mean()


def vertex_loss(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None, norm: str = "l1"
) -> torch.Tensor:
    """Per-vertex distance ``(N, V, 3)``; both meshes root-relative (pelvis at the origin)."""
    err = pointwise(pred.float(), target.float(), norm)
    return weighted_mean(err, sample_mask(mask, err))


def cam_scale_loss(cam: torch.Tensor, k: float = 10.0) -> torch.Tensor:
    """SPIN's camera term ``mean(exp(-k s)^2)``: pushes the weak-perspective scale to be positive."""
    return torch.exp(-k * cam[:, 0].float()).square().mean()


def gt_vertices(
    body: torch.nn.Module | None,
    vertices: torch.Tensor | None,
    rotmats: torch.Tensor | None,
    betas: torch.Tensor | None,
    cache: dict,
) -> torch.Tensor | None:
    """Root-relative ground-truth vertices: the batch's, else the body layer's on the labels'
    ``rotmats``/``betas`` (no gradient); cached in ``cache["vertices"]`` for one loss call."""
    if "vertices" in cache:
        return cache["vertices"]
    if vertices is None and body is not None and rotmats is not None and betas is not None:
        with torch.no_grad():
            out = body(rotmats.float(), betas.float())
            v, j = (out["vertices"], out["joints"]) if isinstance(out, dict) else out[:2]
            vertices = v - j[:, :1]
    cache["vertices"] = vertices
    return vertices
