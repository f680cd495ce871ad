"""Bilinear sampling without GridSample: Gather/Mul/Add with integer index math.

Why: ONNX ``GridSample`` parses only from TensorRT 8.5, so JetPack 4.6 (TRT 8.2) and JetPack 5.0
(TRT 8.4) reject the default graph (shared/research/tensorrt.md §3.4). :func:`bilinear_gather`
computes exactly what ``grid_sample(mode="bilinear", padding_mode="zeros", align_corners=True)``
computes, with ops every TensorRT 8.x parser accepts: Floor, Cast, Gather, Mul, Add, Max/Min.
:class:`GatherRoIPool` replaces DaNet's ``GridRoIPool``; :class:`GatherJointRoITheta` replaces
the point sample of DaNet's hidden-joint test, the graph's only other GridSample.

FP16 safety: flat indices ``n*H*W + y*W + x`` reach ``B*56*56`` and more, far past the 2048 up to
which FP16 holds integers exactly, so they are int64 (TensorRT narrows them to int32); both
modules are FP32 islands, so coordinates and weights stay float32. Clamping uses Max/Min because
TensorRT 8.x ``Clip`` has no integer kernel.
"""

from __future__ import annotations

import torch
from torch import Tensor

from hmrt.train.models.danet.joint_roi import JointRoITheta
from hmrt.train.models.layers.roi_pool import AffineGrid, RoIPoolGeometry


def bilinear_gather(maps: Tensor, grid: Tensor, rows_per_map: int = 1) -> Tensor:
    """``grid_sample(maps[r // rows_per_map], grid[r])`` for every row ``r`` of ``grid``.

    ``maps (B, C, H, W)``, ``grid (B*rows_per_map, Ho, Wo, 2)`` in ``[-1, 1]`` (align_corners=True,
    zeros outside) -> ``(B*rows_per_map, Ho, Wo, C)`` (channels last; callers permute).
    Sharing one map between ``rows_per_map`` rows avoids copying it per RoI.
    """
    _, c, h, w = maps.shape
    ho, wo = grid.shape[1], grid.shape[2]
    # ATen's source-index formula for align_corners=True, in the same order of operations.
    px = (grid[..., 0] + 1.0) / 2.0 * (w - 1)
    py = (grid[..., 1] + 1.0) / 2.0 * (h - 1)
    x0f, y0f = torch.floor(px), torch.floor(py)
    wx1, wy1 = px - x0f, py - y0f
    wx0, wy0 = 1.0 - wx1, 1.0 - wy1
    x0, y0 = x0f.to(torch.int64), y0f.to(torch.int64)
    x_max = torch.full((), w - 1, dtype=torch.int64)
    y_max = torch.full((), h - 1, dtype=torch.int64)
    zero = torch.zeros((), dtype=torch.int64)
    rows = torch.arange(grid.shape[0], dtype=torch.int64) // rows_per_map
    base = (rows * (h * w)).reshape(-1, 1, 1)
    table = maps.permute(0, 2, 3, 1).reshape(-1, c)  # (B*H*W, C)
    out = None
    corners = (
        (x0, y0, wx0 * wy0),
        (x0 + 1, y0, wx1 * wy0),
        (x0, y0 + 1, wx0 * wy1),
        (x0 + 1, y0 + 1, wx1 * wy1),
    )
    for xi, yi, weight in corners:
        inside = (xi >= 0) & (xi <= x_max) & (yi >= 0) & (yi <= y_max)
        xc = torch.minimum(torch.maximum(xi, zero), x_max)
        yc = torch.minimum(torch.maximum(yi, zero), y_max)
        index = (base + yc * w + xc).reshape(-1)
        value = table.index_select(0, index).reshape(-1, ho, wo, c)
        term = value * (weight * inside.to(weight.dtype)).unsqueeze(-1)
        out = term if out is None else out + term
    return out


class GatherRoIPool(RoIPoolGeometry):
    """Drop-in for ``GridRoIPool``: ``(features (B,C,H,W), theta (B,K,2,3)) -> (B, K*C, R, R)``."""

    def __init__(self, channels: int, height: int, width: int, out_size: int, num_rois: int):
        super().__init__(channels, height, width, out_size, num_rois)
        self.grid = AffineGrid(self.out_size)

    def forward(self, features: Tensor, theta: Tensor) -> Tensor:
        k, r, c = self.num_rois, self.out_size, self.channels
        grid = self.grid(theta.reshape(-1, 2, 3))  # (B*K, R, R, 2)
        out = bilinear_gather(features, grid, rows_per_map=k)  # (B*K, R, R, C)
        # RoI-major channels (all C of RoI 0, then RoI 1, ...) like GridRoIPool.
        return out.reshape(-1, k, r, r, c).permute(0, 1, 4, 2, 3).reshape(-1, k * c, r, r)


class GatherJointRoITheta(JointRoITheta):
    """DaNet's ``JointRoITheta`` with the hidden-joint point sample done by gathers."""

    def hidden(self, centres: Tensor, index_onehot: Tensor) -> Tensor:
        """Same result as ``JointRoITheta.hidden`` (one bilinear point sample per joint)."""
        h, w = self.map_size
        score_maps = torch.nn.functional.conv2d(index_onehot, self.own_parts)
        score_maps = score_maps.reshape(-1, 1, h, w)
        points = centres.reshape(-1, 1, 1, 2)
        score = bilinear_gather(score_maps, points)  # (N*24, 1, 1, 1)
        return score.reshape(-1, self.num_joints) < self.hidden_threshold
