"""DaNet's configuration: the ``paper`` preset (official code) and the ``edge`` preset.

Every architectural choice is a field, so ``build("danet", "edge", roi_size=16)`` or a
checkpoint's config dict rebuilds the exact network.
"""

from __future__ import annotations

from dataclasses import dataclass

from hmrt.runtime.errors import InputError
from hmrt.train.models.backbones import BACKBONES
from hmrt.train.models.config import ModelConfig


@dataclass(frozen=True)
class DaNetConfig(ModelConfig):
    """All DaNet hyper-parameters; defaults are the ``paper`` variant.

    Stage 1 (IUV estimator): ``backbone`` producing ``feat_channels`` at ``feat_stride``;
    ``hm_blocks`` bottlenecks before the 24 heatmaps; soft-argmax ``hm_temperature``; RoI crops
    of ``roi_size``; hidden-joint test threshold/fallback scale; training-only RoI jitter;
    ``partial_head`` ``conv3x3`` (official grouped 3x3) or ``dwsep`` (depthwise 3x3 + grouped
    1x1, edge). Between stages: PartDrop ``partdrop_rate`` with ``partdrop_mode`` ``maps``
    (paper Eq. 5: zero the cleaned maps of dropped parts) or ``logits`` (official code: zero raw
    logits before the argmax). Stage 2: global stream ``global_net`` (``resnet18`` or ``tiny``)
    after a 1x1 conv to ``global_width``; local stream ``local_net`` (``resnet18`` trunk to
    layer3, or ``mobile``) after a 1x1 conv to ``local_width``, then a per-joint grouped residual
    stage with ``local_blocks`` blocks giving ``rot_feat_dim`` features per joint; refinement GCN
    hidden width and depth; rotation representation ``6d`` or ``9d``; mean pose ``apose`` or
    ``tpose`` and the mean camera.
    """

    name: str = "danet"
    variant: str = "paper"
    # Stage 1: IUV estimator.
    backbone: str = "hrnet_w48"
    backbone_width: float = 1.0
    feat_channels: int = 48
    feat_stride: int = 4
    hm_blocks: int = 3
    hm_temperature: float = 10.0
    partial_head: str = "conv3x3"
    roi_size: int = 56
    roi_hidden_threshold: float = 0.5
    roi_hidden_scale: float = 0.8
    roi_center_jitter: float = 0.1
    roi_scale_jitter: float = 0.2
    # Between the stages.
    partdrop_rate: float = 0.3
    partdrop_mode: str = "maps"
    # Stage 2: SMPL parameter regressor.
    global_net: str = "resnet18"
    global_width: int = 64
    local_net: str = "resnet18"
    local_width: int = 64
    local_blocks: int = 2
    rot_feat_dim: int = 128
    gcn_hidden: int = 256
    gcn_layers: int = 3
    rot_repr: str = "6d"
    mean_pose: str = "apose"
    mean_cam: tuple[float, float, float] = (0.9, 0.0, 0.0)

    @property
    def feat_size(self) -> tuple[int, int]:
        """``(height, width)`` of the feature, IUV and heatmap maps."""
        return (self.input_size[0] // self.feat_stride, self.input_size[1] // self.feat_stride)

    @classmethod
    def paper(cls) -> DaNetConfig:
        """Official DaNet (HRNet-W48, ResNet-18 streams, 56x56 RoIs, GCN refinement, 6D)."""
        return cls()

    @classmethod
    def edge(cls) -> DaNetConfig:
        """Same heads and streams on MobileNetV2-0.5 + FPN at 28x28 with small per-joint nets."""
        return cls(
            variant="edge",
            backbone="mobilenetv2_fpn",
            backbone_width=0.5,
            feat_channels=32,
            feat_stride=8,
            hm_blocks=2,
            partial_head="dwsep",
            roi_size=20,
            global_net="tiny",
            global_width=32,
            local_net="mobile",
            local_width=16,
            local_blocks=1,
            rot_feat_dim=64,
            gcn_hidden=128,
        )

    def validate(self) -> None:
        super().validate()
        choices = {
            "backbone": BACKBONES,
            "partial_head": ("conv3x3", "dwsep"),
            "partdrop_mode": ("maps", "logits"),
            "global_net": ("resnet18", "tiny"),
            "local_net": ("resnet18", "mobile"),
            "rot_repr": ("6d", "9d"),
            "mean_pose": ("apose", "tpose"),
        }
        for field, allowed in choices.items():
            if getattr(self, field) not in allowed:
                raise InputError(
                    f"danet config {field}={getattr(self, field)!r} is not one of "
                    f"{', '.join(allowed)}"
                )
        if self.backbone.startswith("hrnet_w") and self.feat_stride != 4:
            raise InputError("HRNet backbones give stride-4 features: set feat_stride=4")
        if self.backbone == "mobilenetv2_fpn" and self.feat_stride != 8:
            raise InputError("mobilenetv2_fpn gives stride-8 features: set feat_stride=8")
        if any(s % self.feat_stride for s in self.input_size):
            raise InputError(
                f"input_size {self.input_size} must be a multiple of {self.feat_stride}"
            )
        if not 0.0 <= self.partdrop_rate < 1.0:
            raise InputError(f"partdrop_rate must be in [0, 1), got {self.partdrop_rate}")
        if self.roi_size < 8 or self.gcn_layers < 1 or self.local_blocks < 1:
            raise InputError("roi_size >= 8, gcn_layers >= 1 and local_blocks >= 1 are required")
