"""A tiny torch model with DaNet's deployment-sensitive parts, for fast export tests.

Heatmaps -> soft-argmax (FP32 island) -> per-joint affine theta -> GridRoIPool (GridSample on a
hand-built grid, FP32 island) -> grouped conv -> 6D rotations -> an LBS-like body (MatMuls,
FP32 island) -> the ONNX contract's outputs. Runs in milliseconds at 64x64.
"""

from __future__ import annotations

import torch
from torch import nn

from hmrt.train.models.config import ModelConfig
from hmrt.train.models.layers import Fp32Module, GridRoIPool, SoftArgmax2d

K = 4  # joints / RoIs
V = 30  # vertices


class ToyBody(Fp32Module):
    """LBS-like: shaped template, joint regressor, per-joint rigid transforms blended by weights."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.register_buffer("template", torch.randn(V, 3, generator=g) * 0.3)
        self.register_buffer("shapedirs", torch.randn(V * 3, 10, generator=g) * 0.01)
        w = torch.rand(V, K, generator=g)
        self.register_buffer("weights", w / w.sum(1, keepdim=True))
        self.register_buffer("regressor", torch.softmax(torch.randn(K, V, generator=g), 1))

    def forward(self, rotmats: torch.Tensor, betas: torch.Tensor):
        shaped = self.template + torch.matmul(betas, self.shapedirs.t()).reshape(-1, V, 3)
        joints = torch.matmul(self.regressor, shaped)  # (N, K, 3)
        rel = shaped.unsqueeze(1) - joints.unsqueeze(2)  # (N, K, V, 3)
        posed = torch.matmul(rel, rotmats.transpose(-1, -2)) + joints.unsqueeze(2)
        # Skinning as one batched MatMul: (V, 1, K) @ (N, V, K, 3) -> (N, V, 1, 3).
        verts = torch.matmul(self.weights.unsqueeze(1), posed.permute(0, 2, 1, 3)).squeeze(2)
        return verts, joints


class ToySixD(Fp32Module):
    """6D -> rotation matrix (Gram-Schmidt), an FP32 island like the real rotation layer."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(-1, 3, 2)
        a1, a2 = x[..., 0], x[..., 1]
        b1 = a1 / a1.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        b2 = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
        b2 = b2 / b2.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        b3 = torch.cross(b1, b2, dim=-1)
        return torch.stack([b1, b2, b3], dim=-1)


class ToyDaNet(nn.Module):
    """64x64 input, 16x16 features, K joints, contract outputs."""

    def __init__(self):
        super().__init__()
        self.config = ModelConfig(name="toy", variant="edge", input_size=(64, 64))
        self.stem = nn.Sequential(
            nn.Conv2d(3, 8, 3, 2, 1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, 2, 1),
            nn.ReLU(),
        )
        self.heatmap = nn.Conv2d(8, K, 1)
        self.soft_argmax = SoftArgmax2d(K, 16, 16)
        self.roi_pool = GridRoIPool(8, 16, 16, 8, K)
        self.local = nn.Conv2d(8 * K, 4 * K, 3, padding=1, groups=K)
        self.rot = nn.Linear(4 * K, 6 * K)
        self.shape_cam = nn.Linear(8, 13)
        self.sixd = ToySixD()
        self.body = ToyBody()
        self.register_buffer("scale", torch.full((K,), 0.5))

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.stem(image)
        centres = self.soft_argmax(self.heatmap(f))  # (N, K, 2)
        s = self.scale.expand_as(centres[..., 0])
        z = torch.zeros_like(s)
        theta = torch.stack(
            [torch.stack([s, z, centres[..., 0]], -1), torch.stack([z, s, centres[..., 1]], -1)], -2
        )
        pooled = self.roi_pool(f, theta)
        local = self.local(pooled).mean(dim=(2, 3))
        rotmats = self.sixd(self.rot(local) + torch.tensor([1.0, 0, 0, 1, 0, 0]).repeat(K))
        rotmats = rotmats.reshape(-1, K, 3, 3)
        sc = self.shape_cam(f.mean(dim=(2, 3)))
        cam, betas = sc[:, :3] + torch.tensor([0.9, 0.0, 0.0]), sc[:, 3:]
        verts, joints = self.body(rotmats, betas)
        root = joints[:, :1]
        joints3d = joints - root
        # The contract has rotmats for SMPL's 24 joints: the toy poses K, the others stay identity.
        rest = torch.eye(3).to(rotmats).expand(rotmats.shape[0], 24 - K, 3, 3)
        return {
            "vertices": verts - root,
            "joints3d": joints3d,
            "joints2d": (centres + 1.0) * 32.0,
            "cam": cam,
            "rotmats": torch.cat([rotmats, rest], 1),
            "betas": betas,
        }


def toy_model(seed: int = 0) -> ToyDaNet:
    """A deterministic eval-mode toy model."""
    torch.manual_seed(seed)
    return ToyDaNet().eval()
