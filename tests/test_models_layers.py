"""Model layers against direct references: affine grid, soft-argmax, RoI pooling, FP32 islands."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hmrt.train.models.layers import AffineGrid, GridRoIPool, SoftArgmax2d
from hmrt.train.models.layers.precision import Fp32Module, fp32_islands


def _random_theta(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    scale = 0.1 + torch.rand(n, generator=g)
    centre = 2.0 * torch.rand(n, 2, generator=g) - 1.0
    zero = torch.zeros(n)
    return torch.stack([scale, zero, centre[:, 0], zero, scale, centre[:, 1]], -1).reshape(n, 2, 3)


@pytest.mark.parametrize("size", [7, 24, 56])
def test_affine_grid_equals_torch_bit_for_bit(size):
    theta = _random_theta(48)
    # A general affine (rotation/shear) too: the builder must not assume DaNet's diagonal form.
    theta[:5] = torch.randn(5, 2, 3, generator=torch.Generator().manual_seed(1))
    ours = AffineGrid(size)(theta)
    ref = F.affine_grid(theta, (48, 1, size, size), align_corners=True)
    assert torch.equal(ours, ref)


def _soft_argmax_reference(heatmaps: torch.Tensor, temperature: float) -> torch.Tensor:
    """Official softmax_integral_tensor: marginal sums times pixel index, then idx/(size/2)-1."""
    n, k, h, w = heatmaps.shape
    p = torch.softmax(temperature * heatmaps.reshape(n, k, -1), dim=-1).reshape(n, k, h, w)
    x = (p.sum(dim=2) * torch.arange(w, dtype=p.dtype)).sum(-1)
    y = (p.sum(dim=3) * torch.arange(h, dtype=p.dtype)).sum(-1)
    return torch.stack([x / (0.5 * w) - 1.0, y / (0.5 * h) - 1.0], dim=-1)


def test_soft_argmax_matches_direct_reference():
    g = torch.Generator().manual_seed(0)
    hm = torch.randn(2, 24, 56, 56, dtype=torch.float64, generator=g)
    hm[0, 3, 10, 40] = 20.0  # a sharp peak: x = 40 (width index), y = 10
    layer = SoftArgmax2d(24, 56, 56, temperature=10.0).double()
    ours = layer(hm)
    torch.testing.assert_close(ours, _soft_argmax_reference(hm, 10.0), atol=1e-5, rtol=0)
    peak = ours[0, 3]
    assert abs(peak[0] - (40 / 28 - 1)) < 1e-3 and abs(peak[1] - (10 / 28 - 1)) < 1e-3


def test_roi_pool_matches_naive_per_joint_loop():
    g = torch.Generator().manual_seed(0)
    b, k, c, h, r = 2, 24, 5, 20, 12
    feats = torch.randn(b, c, h, h, generator=g)
    theta = _random_theta(b * k, seed=2).reshape(b, k, 2, 3)
    ours = GridRoIPool(c, h, h, r, k)(feats, theta)
    loops = []
    for j in range(k):
        grid = F.affine_grid(theta[:, j], (b, c, r, r), align_corners=True)
        loops.append(F.grid_sample(feats, grid, mode="bilinear", align_corners=True))
    ref = torch.cat(loops, dim=1)  # joint-major channels
    assert ours.shape == (b, k * c, r, r)
    assert torch.equal(ours, ref)


class _Island(Fp32Module):
    def forward(self, x):
        return torch.matmul(x, x.transpose(-1, -2))


def test_fp32_island_runs_in_fp32_under_autocast():
    outer = torch.nn.Sequential(torch.nn.Linear(8, 8), _Island())
    x = torch.randn(4, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        hidden = outer[0](x)
        out = outer(x)
    assert hidden.dtype == torch.bfloat16  # autocast is really on outside the island
    assert out.dtype == torch.float32
    assert fp32_islands(outer) == {"1": "_Island"}
