"""HKMR (Georgakis, Li, Karanam, Chen, Košecká, Wu, "Hierarchical Kinematic Human Mesh Recovery",
ECCV 2020).

No official code exists; built from shared/research/seed-hkmr.md (the spec) on hmrt's layers.
Decisions the paper leaves open are config fields (``config.py``) and are listed with their
reasons in docs/models/hkmr.md.

Eval outputs (``model.eval()``; the ONNX contract, DaNet's order), from the final outer step:
``vertices (N,V,3)``, ``joints3d (N,24,3)`` (metres, root-relative), ``joints2d (N,24,2)``
(crop pixels), ``cam (N,3)``, ``rotmats (N,24,3,3)``, ``betas (N,10)``.

Training outputs (``model.train()``): the eval keys (final step) plus every outer step, T =
``config.outer_steps``; the losses are summed over t (paper Eq. 3):

====================  ===============  ===========================================================
key                   shape            meaning
====================  ===============  ===========================================================
``pose_aa_steps``     (N,T,24,3)       absolute axis-angle pose (mean + residuals), SMPL order
``rotmats_steps``     (N,T,24,3,3)     the same as rotation matrices (Rodrigues)
``betas_steps``       (N,T,10)         shape
``cam_steps``         (N,T,3)          weak-perspective ``(s, tx, ty)``
``joints3d_steps``    (N,T,24,3)       root-relative metres through the body layer
``joints2d_steps``    (N,T,24,2)       crop pixels (``cam_steps`` projection)
====================  ===============  ===========================================================

FP32 islands: ``rotation`` (axis-angle -> matrix) and ``body`` (LBS, projection).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hmrt.train.models.backbones.resnet import ResNet
from hmrt.train.models.base import BodyHead, HmrModel, make_body_layer
from hmrt.train.models.hemlets.network import MobileNetV2C5
from hmrt.train.models.hkmr.config import HkmrConfig
from hmrt.train.models.hkmr.regressor import HkmrRegressor
from hmrt.train.models.layers.precision import Fp32Module
from hmrt.train.models.registry import register_model
from hmrt.train.rotations import axis_angle_to_matrix

STEP_KEYS = (
    "pose_aa_steps",
    "rotmats_steps",
    "betas_steps",
    "cam_steps",
    "joints3d_steps",
    "joints2d_steps",
)
"""Training-only output keys (module docstring), each ``(N, T, ...)``."""


class AxisAngleToMatrix(Fp32Module):
    """Axis-angle ``(..., 3)`` -> rotation matrices ``(..., 3, 3)``, an FP32 island.

    Rodrigues' formula from ``hmrt.train.rotations.axis_angle_to_matrix``: ``sin θ / θ`` and
    ``(1 - cos θ) / θ²`` switch to their Taylor series below θ = 0.01 through ``where`` and the
    angle is ``sqrt(max(θ², 1e-4))``, so θ = 0 (the mean-pose joints of an untrained model, the
    hands) gives the identity with finite gradients, in FP32 and FP16 (no ``+ 1e-8`` guard that
    FP16 rounds away). Kept FP32 on export all the same: the rotations feed LBS, and FP16 rounds
    the sines of small angles.
    """

    def forward(self, axis_angle: Tensor) -> Tensor:
        return axis_angle_to_matrix(axis_angle)


def build_backbone(config: HkmrConfig) -> nn.Module:
    """Stride-32 encoder with ``out_channels``: ResNet trunk (torchvision keys ``conv1, bn1,
    layer1..4``, no ``fc``) or MobileNetV2 ``features`` to its 320-channel stage."""
    if config.backbone == "mobilenetv2":
        return MobileNetV2C5(config.backbone_width)
    depth = int(config.backbone[len("resnet") :])
    base = max(8, round(64 * config.backbone_width))
    return ResNet(depth, widths=(base, 2 * base, 4 * base, 8 * base))


@register_model(
    "hkmr",
    config_cls=HkmrConfig,
    variants={"paper": HkmrConfig.paper, "edge": HkmrConfig.edge},
    summary="HKMR: per-chain hierarchical kinematic regressors (forward/backward), axis-angle",
)
class Hkmr(HmrModel):
    """HKMR; ``Hkmr(config, body=None)``, ``forward(image) -> dict`` (module docstring)."""

    def __init__(self, config: HkmrConfig, body: Any = None):
        super().__init__(config)
        self.backbone = build_backbone(config)
        self.regressor = HkmrRegressor(self.backbone.out_channels, config)
        self.rotation = AxisAngleToMatrix()
        self.body = BodyHead(make_body_layer(body), config.input_size)

    @property
    def body_hash(self) -> str | None:
        """Hash of the body model the outputs use (from the body layer, when it has one)."""
        layer = self.body.layer
        value = getattr(layer, "hash", None) or getattr(layer, "body_hash", None)
        return None if value is None else str(value)

    def forward(self, image: Tensor) -> dict[str, Any]:
        feature = F.adaptive_avg_pool2d(self.backbone(image), 1).flatten(1)  # Φ (N, F)
        steps = self.regressor(feature)
        if not self.training:
            pose, betas, cam = steps[-1]
            rotmats = self.rotation(pose)
            vertices, joints3d, joints2d = self.body(rotmats, betas, cam)
            return {
                "vertices": vertices,
                "joints3d": joints3d,
                "joints2d": joints2d,
                "cam": cam,
                "rotmats": rotmats,
                "betas": betas,
            }
        # Every step through one body-layer call on a (N*T) batch.
        pose, betas, cam = (torch.stack(x, dim=1) for x in zip(*steps))
        n, t = pose.shape[:2]
        rotmats = self.rotation(pose)
        vertices, joints3d, joints2d = self.body(
            rotmats.flatten(0, 1), betas.flatten(0, 1), cam.flatten(0, 1)
        )
        joints3d = joints3d.unflatten(0, (n, t))
        joints2d = joints2d.unflatten(0, (n, t))
        return {
            "vertices": vertices.unflatten(0, (n, t))[:, -1],
            "joints3d": joints3d[:, -1],
            "joints2d": joints2d[:, -1],
            "cam": cam[:, -1],
            "rotmats": rotmats[:, -1],
            "betas": betas[:, -1],
            "pose_aa_steps": pose,
            "rotmats_steps": rotmats,
            "betas_steps": betas,
            "cam_steps": cam,
            "joints3d_steps": joints3d,
            "joints2d_steps": joints2d,
        }
