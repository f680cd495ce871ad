"""Backbones written in the repository (no torchvision): ResNet, pose HRNet, MobileNetV2."""

from __future__ import annotations

from torch import nn

from hmrt.train.models.backbones.hrnet import PoseHighResolutionNet
from hmrt.train.models.backbones.mobilenet import InvertedResidual, MobileFeatureNet, MobileNetV2
from hmrt.train.models.backbones.resnet import BasicBlock, Bottleneck, ResNet, make_res_layer

__all__ = [
    "BACKBONES",
    "BasicBlock",
    "Bottleneck",
    "InvertedResidual",
    "MobileFeatureNet",
    "MobileNetV2",
    "PoseHighResolutionNet",
    "ResNet",
    "build_feature_backbone",
    "make_res_layer",
]

BACKBONES = ("hrnet_w32", "hrnet_w48", "mobilenetv2_fpn")
"""Names accepted by :func:`build_feature_backbone` (image -> one dense feature map)."""


def build_feature_backbone(name: str, channels: int, width: float = 1.0) -> nn.Module:
    """A dense-feature backbone with attributes ``out_channels`` and ``stride``.

    ``hrnet_w{N}`` gives N channels at stride 4 (``channels`` must equal N); ``mobilenetv2_fpn``
    gives ``channels`` at stride 8 with MobileNetV2 width multiplier ``width``.
    """
    if name.startswith("hrnet_w"):
        hr_width = int(name[len("hrnet_w") :])
        if channels != hr_width:
            raise ValueError(f"{name} outputs {hr_width} channels; set feat_channels={hr_width}")
        return PoseHighResolutionNet(width=hr_width)
    if name == "mobilenetv2_fpn":
        return MobileFeatureNet(width=width, out_channels=channels)
    raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
