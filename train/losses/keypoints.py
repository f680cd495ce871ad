"""Point losses: RoI joint centres and heatmaps (2D), 3D keypoints, reprojection, positions.

2D coordinates are normalised crop coordinates in [-1, 1] (``x_n = 2 px / res - 1``); 3D points
are metres, root-relative (joint 0 at the origin), as in docs/DEVELOPING.md. Visibility or
confidence weights ``(N, J)`` multiply each joint's error; a per-sample mask ``(N,)`` (``has_3d``)
drops samples without the label.
"""

from __future__ import annotations

import torch

from hmrt.train.losses.reduce import combine_masks, pointwise, sample_mask, weighted_mean


def joints2d_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    visibility: torch.Tensor | None = None,
    norm: str = "l1",
) -> torch.Tensor:
    """Distance between 2D points ``(N, J, 2)``, weighted by visibility ``(N, J)``."""
    err = pointwise(pred.float(), target.float(), norm)
    w = None if visibility is None else visibility.float()[..., None]
    return weighted_mean(err, w)


def gaussian_heatmaps(
    joints: torch.Tensor, size: tuple[int, int], sigma: float = 1.0, pixel_offset: float = 0.5
) -> torch.Tensor:
    """Unnormalised Gaussian heatmaps ``(N, J, h, w)`` (peak 1) at normalised joints ``(N, J, 2)``.

    Pixel ``i`` of a map of width ``w`` sits at ``x_n = (2 (i + pixel_offset)) / w - 1``:
    ``pixel_offset`` 0.5 is hmrt's pixel-centre convention (docs/DEVELOPING.md), 0 is DaNet's
    soft-argmax mapping ``i / (w / 2) - 1``, so a heatmap trained with it decodes to the joint.
    ``sigma`` is in heatmap pixels.
    """
    h, w = size
    px = (joints[..., 0].float() + 1.0) * (w / 2.0) - pixel_offset
    py = (joints[..., 1].float() + 1.0) * (h / 2.0) - pixel_offset
    xs = torch.arange(w, device=joints.device, dtype=torch.float32)
    ys = torch.arange(h, device=joints.device, dtype=torch.float32)
    gx = torch.exp(-((xs - px[..., None]) ** 2) / (2 * sigma**2))  # (N,J,w)
    gy = torch.exp(-((ys - py[..., None]) ** 2) / (2 * sigma**2))  # (N,J,h)
    return gy[..., :, None] * gx[..., None, :]


def heatmap_loss(
    heatmaps: torch.Tensor,
    joints: torch.Tensor,
    visibility: torch.Tensor | None = None,
    sigma: float = 1.0,
    norm: str = "kl",
    pixel_offset: float = 0.5,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Heatmaps ``(N, J, h, w)`` against Gaussians at the ground-truth joints.

    ``norm="kl"``: KL divergence from the normalised Gaussian to ``softmax(temperature * hm)``,
    the distribution a soft-argmax averages over, so the optimum decodes exactly to the joint
    (an MSE-to-Gaussian target leaves the soft-argmax biased towards the map centre).
    ``norm="mse"``: per-pixel MSE to the peak-1 Gaussian (the classic heatmap loss).
    """
    target = gaussian_heatmaps(joints, tuple(heatmaps.shape[-2:]), sigma, pixel_offset)
    w = None if visibility is None else visibility.float()
    if norm == "kl":
        q = target.flatten(2)
        q = q / q.sum(-1, keepdim=True).clamp(min=1e-12)
        logp = torch.log_softmax(temperature * heatmaps.float().flatten(2), dim=-1)
        kl = (q * (torch.log(q.clamp(min=1e-12)) - logp)).sum(-1)  # (N, J)
        return weighted_mean(kl, w)
    err = pointwise(heatmaps.float(), target, norm)
    return weighted_mean(err, None if w is None else w[..., None, None])


def root_relative(points: torch.Tensor, root: int = 0) -> torch.Tensor:
    """Subtract joint ``root`` from ``(N, J, 3)`` points."""
    return points - points[:, root : root + 1]


def joints3d_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
    confidence: torch.Tensor | None = None,
    norm: str = "l1",
) -> torch.Tensor:
    """Root-relative 3D keypoint distance ``(N, J, 3)``; ``mask`` (N,) and ``confidence`` (N, J)."""
    err = pointwise(root_relative(pred.float()), root_relative(target.float()), norm)
    conf = None if confidence is None else confidence.float()[..., None]
    return weighted_mean(err, combine_masks(sample_mask(mask, err), conf))


def weak_perspective(points: torch.Tensor, cam: torch.Tensor) -> torch.Tensor:
    """Project root-relative points ``(N, J, 3)`` with ``cam = (s, tx, ty)`` to ``[-1, 1]`` crops."""
    s = cam[:, None, 0:1]
    t = cam[:, None, 1:3]
    return s * (points[..., :2] + t)


def reprojection_loss(
    joints3d: torch.Tensor,
    cam: torch.Tensor,
    joints2d: torch.Tensor,
    visibility: torch.Tensor | None = None,
    norm: str = "l1",
) -> torch.Tensor:
    """Predicted joints through the predicted weak-perspective camera vs labelled 2D joints."""
    proj = weak_perspective(root_relative(joints3d.float()), cam.float())
    return joints2d_loss(proj, joints2d, visibility, norm)


def position_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
    norm: str = "l1",
) -> torch.Tensor:
    """Joint positions from a refinement head ``(N, J, 3)`` vs root-relative targets (no re-rooting).

    DaNet's position heads regress every joint including the root, so the prediction is used
    as is (the official code compares with SMPL joints in the body frame).
    """
    err = pointwise(pred.float(), target.float(), norm)
    return weighted_mean(err, sample_mask(mask, err))
