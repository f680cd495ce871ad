"""Joint-centric RoI pooling: an affine sampling grid per RoI, then bilinear ``grid_sample``.

The grid is built from a constant base grid and ``theta`` (never ``F.affine_grid``, which the
opset-17 exporter rejects and TensorRT cannot parse); it equals
``F.affine_grid(theta, size, align_corners=True)`` bit for bit. :class:`GridRoIPool` has the
interface ``(features, theta) -> pooled`` so export can swap in a gather-based bilinear sampler
for TensorRT < 8.5 (no GridSample) without touching the model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hmrt.train.models.layers.precision import Fp32Module


class AffineGrid(nn.Module):
    """``theta (N, 2, 3)`` -> sampling grid ``(N, H, W, 2)`` (align_corners=True convention).

    Same arithmetic as ATen's ``affine_grid_generator``: base points ``(x, y, 1)`` with
    ``x, y = linspace(-1, 1, size)``, multiplied by ``theta^T`` in one batched MatMul.
    """

    def __init__(self, height: int, width: int | None = None):
        super().__init__()
        self.height = int(height)
        self.width = int(width if width is not None else height)
        xs = torch.linspace(-1.0, 1.0, self.width)
        ys = torch.linspace(-1.0, 1.0, self.height)
        base = torch.ones(self.height, self.width, 3)
        base[..., 0] = xs
        base[..., 1] = ys.unsqueeze(-1)
        self.register_buffer("base", base.reshape(1, self.height * self.width, 3), persistent=False)

    def forward(self, theta: Tensor) -> Tensor:
        grid = torch.matmul(self.base, theta.transpose(1, 2))  # (N, H*W, 2)
        return grid.reshape(-1, self.height, self.width, 2)


class RoIPoolGeometry(Fp32Module):
    """What every RoI-pooling form shares: the feature map, RoI count and output size.

    ``GridRoIPool`` and the export rewrites (gather, MatMul) derive from it, so a rewrite is
    built from the module it replaces with ``Rewrite.like(pool)``.
    """

    def __init__(self, channels: int, height: int, width: int, out_size: int, num_rois: int):
        super().__init__()
        self.channels = int(channels)
        self.height = int(height)
        self.width = int(width)
        self.out_size = int(out_size)
        self.num_rois = int(num_rois)

    @classmethod
    def like(cls, pool: RoIPoolGeometry):
        """A pool of this class with the same geometry as ``pool``."""
        return cls(pool.channels, pool.height, pool.width, pool.out_size, pool.num_rois)


class GridRoIPool(RoIPoolGeometry):
    """Pool ``num_rois`` affine RoIs per image from one feature map (bilinear, zeros outside).

    ``forward(features (B, C, H, W), theta (B, K, 2, 3)) -> (B, K*C, R, R)``, RoI-major
    channels (all C channels of RoI 0, then RoI 1, ...), as DaNet's grouped partial-IUV conv
    expects. ``align_corners=True`` matches the official code (written for torch 1.1).
    An FP32 island: the grid holds sub-pixel coordinates, the index math of the pooling.
    """

    def __init__(self, channels: int, height: int, width: int, out_size: int, num_rois: int):
        super().__init__(channels, height, width, out_size, num_rois)
        self.grid = AffineGrid(self.out_size)

    def sample(self, maps: Tensor, theta: Tensor) -> Tensor:
        """Sample per-RoI maps ``(B*K, C', H, W)`` with ``theta (B, K, 2, 3)`` -> ``(B*K, C', R, R)``.

        Used by :meth:`forward` and to warp ground-truth maps exactly like the features.
        """
        grid = self.grid(theta.reshape(-1, 2, 3))
        return F.grid_sample(maps, grid, mode="bilinear", padding_mode="zeros", align_corners=True)

    def forward(self, features: Tensor, theta: Tensor) -> Tensor:
        c, h, w, k, r = self.channels, self.height, self.width, self.num_rois, self.out_size
        # One GridSample over B*K copies of the map (a Tile): static shapes, dynamic batch.
        repeated = features.unsqueeze(1).repeat(1, k, 1, 1, 1).reshape(-1, c, h, w)
        pooled = self.sample(repeated, theta)
        return pooled.reshape(-1, k * c, r, r)
