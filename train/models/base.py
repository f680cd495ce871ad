"""What every zoo model shares: the output contract, the body head and the FP32 declarations.

DESIGN.md's model contract: input ``image (N, 3, H, W)`` normalised with the model's mean/std;
eval output ``vertices (N,V,3)``, ``joints3d (N,24,3)`` (metres, root-relative),
``joints2d (N,24,2)`` (crop pixels), ``cam (N,3)`` weak perspective ``(s, tx, ty)``,
``rotmats (N,24,3,3)``, ``betas (N,10)`` (parametric models only). :class:`BodyHead` turns
predicted parameters into those outputs with the body layer (LBS), the root subtraction and the
camera of
docs/DEVELOPING.md (``x_n = s * (X + tx)``, ``px = (x_n + 1) * W / 2``); :class:`MeshHead`
does the same for non-parametric models that predict vertices directly.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from hmrt.train.models.config import ModelConfig
from hmrt.train.models.layers.precision import Fp32Module, fp32_islands

OUTPUT_NAMES = ("vertices", "joints3d", "joints2d", "cam", "rotmats", "betas")
"""Eval-mode output keys, in ONNX output order."""


def make_body_layer(body: Any = None) -> nn.Module:
    """A torch body layer: ``body`` itself if it is an ``nn.Module``, else ``BodyLayer(body)``."""
    if isinstance(body, nn.Module):
        return body
    from hmrt.train.body import BodyLayer

    return BodyLayer(body)


class BodyHead(Fp32Module):
    """Body parameters + camera -> root-relative vertices/joints and crop-pixel 2D joints.

    An FP32 island (LBS sums over thousands of vertices; projection feeds pixel outputs). The
    body layer's arrays are constants of the body model, not weights: they are left out of
    ``state_dict`` (a checkpoint never carries SMPL-derived data) and are rebuilt from the body
    given at construction.
    """

    def __init__(self, body_layer: nn.Module, input_size: tuple[int, int]):
        super().__init__()
        self.layer = body_layer
        height, width = input_size
        self.register_buffer(
            "half_size", torch.tensor([width / 2.0, height / 2.0]), persistent=False
        )
        self.register_state_dict_post_hook(_drop_body_arrays)

    def forward(self, rotmats: Tensor, betas: Tensor, cam: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if getattr(self.layer, "supports_root_relative", False):
            # hmrt's BodyLayer subtracts the root in its component-major layout, where the
            # broadcast is cheap (a (N,V,3) - (N,1,3) Sub is slow in ONNX Runtime).
            vertices, joints = self.layer(rotmats, betas, root_relative=True)
        else:
            out = self.layer(rotmats, betas)
            vertices, joints = (
                (out["vertices"], out["joints"]) if isinstance(out, dict) else out[:2]
            )
            vertices, joints = _subtract_root(vertices, joints)
        return vertices, joints, _project_weak(joints, cam, self.half_size)


class MeshHead(Fp32Module):
    """Vertices + camera -> root-relative vertices/joints and crop-pixel 2D joints.

    The head of non-parametric models (DecoMR, BoBW), the twin of :class:`BodyHead` without
    LBS: joints are the body's ``J_regressor (J, V)`` applied to the predicted vertices, the
    root joint is subtracted from both, and the joints are projected with the same weak
    perspective camera. An FP32 island (a weighted sum over all vertices per joint). The
    regressor is a non-persistent buffer: body-model data, rebuilt from the body file.
    """

    def __init__(self, regressor: np.ndarray, input_size: tuple[int, int]):
        super().__init__()
        reg = torch.from_numpy(np.array(regressor, dtype=np.float32))
        self.register_buffer("J_regressor", reg, persistent=False)
        height, width = input_size
        self.register_buffer(
            "half_size", torch.tensor([width / 2.0, height / 2.0]), persistent=False
        )

    def forward(self, vertices: Tensor, cam: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        joints = torch.matmul(self.J_regressor, vertices)  # (J,V) @ (N,V,3) -> (N,J,3)
        vertices, joints = _subtract_root(vertices, joints)
        return vertices, joints, _project_weak(joints, cam, self.half_size)


def _subtract_root(vertices: Tensor, joints: Tensor) -> tuple[Tensor, Tensor]:
    """Vertices and joints relative to the root joint (joint 0), the contract's 3D frame."""
    root = joints[:, :1]
    return vertices - root, joints - root


def _project_weak(joints: Tensor, cam: Tensor, half_size: Tensor) -> Tensor:
    """Weak-perspective ``cam = (s, tx, ty)`` projection of the joints to crop pixels."""
    scale = cam[:, 0:1].unsqueeze(-1)  # (N,1,1)
    shift = cam[:, 1:3].unsqueeze(1)  # (N,1,2)
    return (scale * (joints[..., :2] + shift) + 1.0) * half_size


def _drop_body_arrays(module: nn.Module, state_dict: dict, prefix: str, local_metadata) -> None:
    for key in [k for k in state_dict if k.startswith(prefix + "layer.")]:
        del state_dict[key]


class HmrModel(nn.Module):
    """Base class of zoo models: ``Model(config, body=None)``; see the module docstring.

    Subclasses set :attr:`train_only` (submodules unused in eval, e.g. auxiliary heads) so that
    parameter counts "used at inference" need no name guessing, and build their precision-
    sensitive parts from :class:`Fp32Module` so :meth:`fp32_modules` finds them.
    """

    output_names: ClassVar[tuple[str, ...]] = OUTPUT_NAMES
    train_only: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.register_load_state_dict_post_hook(_ignore_missing_body_arrays)

    @property
    def input_size(self) -> tuple[int, int]:
        """Model input ``(height, width)`` in pixels."""
        return tuple(self.config.input_size)

    @property
    def mean(self) -> tuple[float, float, float]:
        """RGB mean (0..1 scale) subtracted from the input."""
        return tuple(self.config.mean)

    @property
    def std(self) -> tuple[float, float, float]:
        """RGB standard deviation (0..1 scale) dividing the input."""
        return tuple(self.config.std)

    def fp32_modules(self) -> dict[str, str]:
        """Precision-sensitive submodules: qualified name -> class name (all :class:`Fp32Module`)."""
        return fp32_islands(self)

    def train_only_modules(self) -> list[str]:
        """Qualified names of submodules that only training uses."""
        return list(self.train_only)

    def parameter_counts(self) -> dict[str, int]:
        """``total`` parameters and those ``inference`` uses (total minus train-only modules)."""
        total = sum(p.numel() for p in self.parameters())
        modules = dict(self.named_modules())
        unused = sum(p.numel() for n in self.train_only for p in modules[n].parameters())
        return {"total": total, "inference": total - unused}


def _ignore_missing_body_arrays(module: nn.Module, incompatible) -> None:
    incompatible.missing_keys[:] = [
        k for k in incompatible.missing_keys if not k.startswith("body.layer.")
    ]
