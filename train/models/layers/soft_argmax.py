"""2D soft-argmax as Softmax + MatMul with a constant coordinate table (an FP32 island)."""

from __future__ import annotations

import torch
from torch import Tensor

from hmrt.train.models.layers.precision import Fp32Module


class SoftArgmax2d(Fp32Module):
    """Expected (x, y) of ``softmax(temperature * heatmap)`` in ``[-1, 1)`` coordinates.

    Follows DaNet's official ``softmax_integral_tensor``: pixel index ``i`` (0-based, x = width
    index) maps to ``i / (size / 2) - 1``, so the range is ``[-1, 1 - 2/size]`` (not the
    ``align_corners`` convention); the temperature multiplies the logits (10 in DaNet).
    Written as one Softmax over the flattened map and one MatMul with a constant ``(H*W, 2)``
    table so the exported graph is two nodes and has no data-dependent shapes.
    """

    def __init__(self, num_maps: int, height: int, width: int, temperature: float = 10.0):
        super().__init__()
        self.num_maps = int(num_maps)
        self.height = int(height)
        self.width = int(width)
        self.temperature = float(temperature)
        xs = torch.arange(self.width, dtype=torch.float64) / (0.5 * self.width) - 1.0
        ys = torch.arange(self.height, dtype=torch.float64) / (0.5 * self.height) - 1.0
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        coords = torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=-1).float()
        self.register_buffer("coords", coords, persistent=False)  # (H*W, 2)

    def forward(self, heatmaps: Tensor) -> Tensor:
        """``heatmaps (N, K, H, W)`` logits -> ``(N, K, 2)`` normalised (x, y)."""
        flat = heatmaps.reshape(-1, self.num_maps, self.height * self.width)
        prob = torch.softmax(self.temperature * flat, dim=-1)
        return torch.matmul(prob, self.coords)
