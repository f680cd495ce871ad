"""Separable bilinear RoI pooling as two MatMuls: the fast CPU form of DaNet's RoI pooling.

Why: DaNet's joint RoIs are axis-aligned (``JointRoITheta`` builds ``[[s, 0, cx], [0, s, cy]]``),
so bilinear sampling factorises into a per-row and a per-column interpolation matrix. With the
"tent" weights ``relu(1 - |p - i|)`` over the valid pixel indices ``i`` (which is exactly
bilinear interpolation with zeros outside the map, ``align_corners=True``), pooling all RoIs
is ``Wy @ F @ Wx^T``: two batched MatMuls, a Transpose and a few elementwise ops on tiny
tensors. ONNX Runtime's GridSample runs the same pooling several times slower on a CPU, and the
gather form (``roi_pool_gather.py``) spends its time in ~100 elementwise nodes over the pooled
tensor. Every op here (MatMul, Abs, Relu, Transpose) parses on TensorRT 8.2 and later.

:class:`MatMulRoIPool` replaces ``GridRoIPool``; :class:`MatMulJointRoITheta` replaces the
point sample of DaNet's hidden-joint test. Both equal the modules they replace up to float32
rounding (the sums run in another order); they read only the diagonal and translation of
``theta``, so they are valid only for axis-aligned RoIs, which is all DaNet produces. FP32
islands, like the modules they replace.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from hmrt.train.models.danet.joint_roi import JointRoITheta
from hmrt.train.models.layers.roi_pool import RoIPoolGeometry


def tent_weights(coords: Tensor, size: int) -> Tensor:
    """Bilinear weights ``(..., size)`` of normalised coordinates ``coords (...)`` in ``[-1, 1]``.

    ``align_corners=True`` (pixel centres at -1 and +1), zeros outside the map; ATen's source
    index formula ``(g + 1) / 2 * (size - 1)``. Row ``r`` sums to 1 inside the map.
    """
    pixel = (coords + 1.0) / 2.0 * (size - 1)
    index = torch.arange(size, dtype=coords.dtype, device=coords.device)
    return F.relu(1.0 - (pixel.unsqueeze(-1) - index).abs())


def axis_weights(coords: Tensor, height: int, width: int) -> tuple[Tensor, Tensor]:
    """``coords (..., 2, P)`` normalised (x, y) rows -> ``wx (..., P, width)``, ``wy (..., P, height)``.

    One set of elementwise nodes for both axes when the map is square (DaNet's is).
    """
    if height == width:
        both = tent_weights(coords, width)  # (..., 2, P, W)
        return both[..., 0, :, :], both[..., 1, :, :]
    return tent_weights(coords[..., 0, :], width), tent_weights(coords[..., 1, :], height)


class MatMulRoIPool(RoIPoolGeometry):
    """Drop-in for ``GridRoIPool`` on axis-aligned RoIs: ``(B,C,H,W), (B,K,2,3) -> (B,K*C,R,R)``."""

    def __init__(self, channels: int, height: int, width: int, out_size: int, num_rois: int):
        super().__init__(channels, height, width, out_size, num_rois)
        # AffineGrid's base points along one axis, as rows (x, y, 1): theta @ basis gives the
        # x positions (row 0) and y positions (row 1) of every RoI with AffineGrid's arithmetic
        # (the shear terms multiply 0 here and are 0 in an axis-aligned theta).
        line = torch.linspace(-1.0, 1.0, self.out_size)
        basis = torch.stack([line, line, torch.ones_like(line)])  # (3, R)
        self.register_buffer("basis", basis, persistent=False)

    def forward(self, features: Tensor, theta: Tensor) -> Tensor:
        c, h, w, k, r = self.channels, self.height, self.width, self.num_rois, self.out_size
        wx, wy = axis_weights(torch.matmul(theta, self.basis), h, w)  # (B,K,R,W), (B,K,R,H)
        # Rows: all RoIs at once, one (K*R, H) @ (H, W) product per channel.
        rows = torch.matmul(wy.reshape(-1, 1, k * r, h), features)  # (B, C, K*R, W)
        # RoI-major (contiguous R*W blocks move), then columns: one (C*R, W) @ (W, R) per RoI.
        rows = rows.reshape(-1, c, k, r * w).transpose(1, 2).reshape(-1, k, c * r, w)
        pooled = torch.matmul(rows, wx.transpose(-1, -2))  # (B, K, C*R, R)
        return pooled.reshape(-1, k * c, r, r)


class MatMulJointRoITheta(JointRoITheta):
    """DaNet's ``JointRoITheta`` with the hidden-joint point sample done by two MatMuls."""

    def hidden(self, centres: Tensor, index_onehot: Tensor) -> Tensor:
        """Same result as ``JointRoITheta.hidden`` (one bilinear point sample per joint)."""
        h, w = self.map_size
        score_maps = F.conv2d(index_onehot, self.own_parts)  # (N, 24, h, w)
        wx, wy = axis_weights(centres.unsqueeze(-1), h, w)  # (N, 24, 1, w), (N, 24, 1, h)
        score = torch.matmul(torch.matmul(wy, score_maps), wx.transpose(-1, -2))  # (N,24,1,1)
        return score.reshape(-1, self.num_joints) < self.hidden_threshold
