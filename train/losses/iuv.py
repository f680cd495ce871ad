"""DaNet's IUV losses: part-index cross-entropy and foreground-masked U,V regression.

The same two losses supervise the global IUV maps (25 channels: background + 24 DensePose parts)
and the 24 partial maps (7 channels per joint: background + the joint's parts). Partial targets
come from the ground-truth global maps: channel selection per joint, then the same affine warp
(the predicted, detached RoI of each joint) that the model's RoI pooling applied to its features
(official code: ``part_iuv_simp`` followed by ``affine_grid``/``grid_sample``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hmrt.train.losses.reduce import pointwise, sample_mask, weighted_mean


def _resize_labels(index: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize of an integer label map ``(N, H, W)`` to ``size``."""
    if tuple(index.shape[-2:]) == tuple(size):
        return index
    return F.interpolate(index[:, None].float(), size=size, mode="nearest")[:, 0].long()


def _resize_values(value: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest resize of a dense value map ``(N, H, W)`` (nearest keeps U,V on their part)."""
    if tuple(value.shape[-2:]) == tuple(size):
        return value
    return F.interpolate(value[:, None].float(), size=size, mode="nearest")[:, 0]


def index_loss(
    logits: torch.Tensor,
    index: torch.Tensor,
    mask: torch.Tensor | None = None,
    fg_weight: float = 1.0,
) -> torch.Tensor:
    """Per-pixel cross-entropy of part logits ``(N, C, H, W)`` against labels ``(N, H, W)``.

    ``mask`` ``(N,)`` (``has_iuv``) drops samples without dense labels. ``fg_weight`` weighs
    foreground pixels (label > 0) against background ones (1): a person covers ~13% of a crop,
    so plain CE learns "background" first. Labels are resized (nearest) to the logits'
    resolution if they differ.
    """
    index = _resize_labels(index.long(), logits.shape[-2:])
    ce = F.cross_entropy(logits.float(), index, reduction="none")
    return _fg_weighted_mean(ce, index, mask, fg_weight)


def _fg_weighted_mean(
    ce: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None, fg_weight: float
) -> torch.Tensor:
    """Mean of per-pixel ``ce`` over the kept samples, foreground pixels weighted ``fg_weight``."""
    w = sample_mask(mask, ce)
    if fg_weight != 1.0:
        w = w * torch.where(labels > 0, fg_weight, 1.0)
    return weighted_mean(ce, w)


def uv_loss(
    u_pred: torch.Tensor,
    v_pred: torch.Tensor,
    index: torch.Tensor,
    u_gt: torch.Tensor,
    v_gt: torch.Tensor,
    mask: torch.Tensor | None = None,
    norm: str = "l1",
) -> torch.Tensor:
    """U,V regression at foreground pixels, read from the ground-truth part's channel.

    ``u_pred``/``v_pred`` ``(N, C, H, W)`` hold one U (V) map per part channel; the target part
    ``index`` ``(N, H, W)`` picks the channel, and background pixels (index 0) are ignored, as in
    the paper ("only at foreground pixels") and the official code (``pred[I_gt > 0]``).
    Returns the mean over labelled foreground pixels of ``(d(U) + d(V)) / 2``.
    """
    size = u_pred.shape[-2:]
    index = _resize_labels(index.long(), size)
    u_gt = _resize_values(u_gt, size)
    v_gt = _resize_values(v_gt, size)
    sel = index[:, None]
    u = u_pred.float().gather(1, sel)[:, 0]
    v = v_pred.float().gather(1, sel)[:, 0]
    err = 0.5 * (pointwise(u, u_gt.float(), norm) + pointwise(v, v_gt.float(), norm))
    fg = (index > 0).float() * sample_mask(mask, err)
    return weighted_mean(err, fg)


def partial_iuv_targets(
    index: torch.Tensor,
    u: torch.Tensor,
    v: torch.Tensor,
    theta: torch.Tensor,
    part_table: torch.Tensor,
    size: tuple[int, int],
    align_corners: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Ground-truth partial IUV maps in each joint's RoI.

    ``index``/``u``/``v`` ``(N, H, W)``: global labels; ``theta`` ``(N, K, 2, 3)``: the affine
    RoI per joint (``affine_grid`` convention, as the model pooled its features); ``part_table``
    ``(K, P)`` DensePose part ids kept for each joint (channel 0 of each partial map is
    "none of these parts"). Returns ``(index_p (N, K, h, w) long, u_p, v_p (N, K, h, w))``:
    label maps per joint whose channel numbers index ``[background, *part_table[k]]``.
    """
    n, k = theta.shape[:2]
    p = part_table.shape[1]
    onehot = F.one_hot(index.long(), 25).permute(0, 3, 1, 2).float()  # (N,25,H,W)
    table = part_table.to(index.device).long()
    sel = onehot[:, table.reshape(-1)].reshape(n, k, p, *index.shape[-2:])
    # Parts are exclusive per pixel, so max (not sum) stays 0/1 despite duplicate table entries.
    bg = 1.0 - sel.amax(dim=2, keepdim=True)
    onehot_p = torch.cat([bg, sel], dim=2)  # (N,K,1+P,H,W)
    u_p = onehot_p * u[:, None, None].float()
    v_p = onehot_p * v[:, None, None].float()
    stack = torch.cat([onehot_p, u_p, v_p], dim=2).reshape(n * k, 3 * (1 + p), *index.shape[-2:])
    grid = F.affine_grid(
        theta.reshape(n * k, 2, 3).float().detach(),
        (n * k, 1, *size),
        align_corners=align_corners,
    )
    warped = F.grid_sample(stack, grid, mode="bilinear", align_corners=align_corners)
    warped = warped.reshape(n, k, 3, 1 + p, *size)
    occ, wu, wv = warped[:, :, 0], warped[:, :, 1], warped[:, :, 2]
    # Outside the image everything samples to 0: argmax then picks channel 0 (background).
    label = occ.argmax(dim=2)  # (N,K,h,w)
    w = occ.gather(2, label[:, :, None]).clamp(min=1e-6)
    u_t = (wu.gather(2, label[:, :, None]) / w)[:, :, 0]
    v_t = (wv.gather(2, label[:, :, None]) / w)[:, :, 0]
    return label, u_t, v_t


def partial_index_loss(
    logits: torch.Tensor,
    index_p: torch.Tensor,
    mask: torch.Tensor | None = None,
    fg_weight: float = 1.0,
) -> torch.Tensor:
    """Cross-entropy of partial part logits ``(N, K, C, h, w)`` against ``(N, K, h, w)`` labels."""
    n, k, c, h, w = logits.shape
    ce = F.cross_entropy(
        logits.float().reshape(n * k, c, h, w), index_p.reshape(n * k, h, w), reduction="none"
    ).reshape(n, k, h, w)
    return _fg_weighted_mean(ce, index_p, mask, fg_weight)


def partial_uv_loss(
    u_pred: torch.Tensor,
    v_pred: torch.Tensor,
    index_p: torch.Tensor,
    u_t: torch.Tensor,
    v_t: torch.Tensor,
    mask: torch.Tensor | None = None,
    norm: str = "l1",
) -> torch.Tensor:
    """U,V regression on partial maps ``(N, K, C, h, w)`` at each joint's foreground pixels."""
    n, k, c, h, w = u_pred.shape
    flat = (n * k, c, h, w)
    m = None if mask is None else mask.float().repeat_interleave(k)
    return uv_loss(
        u_pred.reshape(flat),
        v_pred.reshape(flat),
        index_p.reshape(n * k, h, w),
        u_t.reshape(n * k, h, w),
        v_t.reshape(n * k, h, w),
        m,
        norm,
    )
