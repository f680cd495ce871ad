"""Small stand-ins for the trainer tests: a toy body layer, a toy registry model, a toy dataset.

The toy task is learnable in a few dozen steps on CPU: each image is a fixed random linear
code of the sample's pose (6D) and shape, so a linear read-out recovers them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from hmrt.train.models.config import ModelConfig
from hmrt.train.models.registry import _REGISTRY, register_model
from hmrt.train.rotations import axis_angle_to_matrix, matrix_to_rot6d, rot6d_to_matrix

J, V, K = 24, 40, 10
IMG = 8


class ToyBody(nn.Module):
    """``forward(rotmats, betas) -> (vertices, joints)``: each point rotated by its joint's R."""

    body_hash = "toy-body"

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer("rest", torch.randn(J, 3, generator=g) * 0.3)
        self.register_buffer("dirs", torch.randn(K, J * 3, generator=g) * 0.02)
        self.register_buffer("vjoint", torch.arange(V) % J)
        self.register_buffer("voff", torch.randn(V, 3, generator=g) * 0.05)

    def forward(self, rotmats: torch.Tensor, betas: torch.Tensor):
        rest = self.rest + (betas @ self.dirs).reshape(-1, J, 3)
        joints = torch.einsum("njab,njb->nja", rotmats, rest)
        r = rotmats[:, self.vjoint]
        verts = joints[:, self.vjoint] + torch.einsum("nvab,vb->nva", r, self.voff)
        return verts, joints


@dataclass(frozen=True)
class ToyConfig(ModelConfig):
    """Toy model config: input size and hidden width."""

    name: str = "toy"
    input_size: tuple[int, int] = (IMG, IMG)
    hidden: int = 64


class ToyModel(nn.Module):
    """Conv + MLP regressing 6D pose, betas and camera; DESIGN.md's output dict."""

    def __init__(self, config: ToyConfig, body=None):
        super().__init__()
        self.config = config
        self.body = body if isinstance(body, nn.Module) else ToyBody()
        self.conv = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(8 * IMG * IMG, config.hidden),
            nn.ReLU(),
            nn.Linear(config.hidden, J * 6 + K + 3),
        )
        self.register_buffer("mean6d", matrix_to_rot6d(torch.eye(3)).repeat(J))

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.head(self.conv(image))
        n = image.shape[0]
        rot = rot6d_to_matrix((out[:, : J * 6] + self.mean6d).reshape(n, J, 6))
        betas = out[:, J * 6 : J * 6 + K]
        cam = out[:, -3:] + torch.tensor([1.0, 0.0, 0.0])
        verts, joints = self.body(rot, betas)
        root = joints[:, :1]
        joints = joints - root
        j2d = (cam[:, None, :1] * (joints[..., :2] + cam[:, None, 1:]) + 1) * (IMG / 2)
        return {
            "vertices": verts - root,
            "joints3d": joints,
            "joints2d": j2d,
            "cam": cam,
            "rotmats": rot,
            "betas": betas,
        }


def register_toy() -> None:
    """Add ``toy`` to the model registry (idempotent)."""
    if "toy" not in _REGISTRY:
        register_model(
            "toy",
            config_cls=ToyConfig,
            variants={"paper": ToyConfig, "edge": lambda: ToyConfig(variant="edge", hidden=32)},
            summary="test stand-in",
        )(ToyModel)


class ToyDataset(Dataset):
    """Samples that are a pure function of ``(seed, index)``; any index >= 0 is valid."""

    def __init__(self, size: int = 64, seed: int = 0, has_smpl_every: int = 1):
        self.size, self.seed, self.every = size, seed, has_smpl_every
        g = np.random.default_rng(1234)
        self.code = torch.from_numpy(g.standard_normal((J * 6 + K, 3 * IMG * IMG)) * 0.2).float()
        self.body = ToyBody()

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        g = np.random.default_rng([self.seed, index])
        aa = torch.from_numpy(g.normal(0, 0.4, (J, 3))).float()
        rot = axis_angle_to_matrix(aa)
        betas = torch.from_numpy(g.normal(0, 1, K)).float()
        feats = torch.cat([matrix_to_rot6d(rot).reshape(-1), betas])
        image = (feats @ self.code).reshape(3, IMG, IMG)
        with torch.no_grad():
            _, joints = self.body(rot[None], betas[None])
        joints = (joints - joints[:, :1])[0]
        cam = torch.tensor([0.9, 0.05, -0.05])
        j2d = cam[0] * (joints[:, :2] + cam[1:])
        return {
            "image": image,
            "rotmats": rot,
            "betas": betas,
            "joints3d": joints,
            "joints2d": j2d,
            "joints2d_vis": torch.ones(J),
            "has_smpl": torch.tensor(float(index % self.every == 0)),
            "has_3d": torch.tensor(1.0),
        }
