"""HEMlets PoSh's configuration: the ``paper`` preset (official pose network) and ``edge``.

Every architectural choice is a field, so ``build("hemlets", "edge", depth_bins=16)`` or a
checkpoint's config dict rebuilds the exact network.
"""

from __future__ import annotations

from dataclasses import dataclass

from hmrt.runtime.errors import InputError
from hmrt.train.models.config import ModelConfig
from hmrt.train.models.hemlets.joints import NUM_JOINTS, NUM_PARTS

BACKBONES = ("resnet50", "resnet18", "mobilenetv2")
POSH_FEATURES = ("high", "backbone")
BACKBONE_STRIDE = 32


@dataclass(frozen=True)
class HemletsConfig(ModelConfig):
    """All HEMlets PoSh hyper-parameters; defaults are the ``paper`` variant (official config).

    Pose network: ``backbone`` (``resnet50``/``resnet18`` with stage widths ``64 x
    backbone_width x (1, 2, 4, 8)``, or ``mobilenetv2`` with width multiplier
    ``backbone_width``) at stride 32; two upsampling branches of ``log2(32 / heatmap_stride)``
    deconvolutions of ``branch_channels`` (official ``bra_nfeat``), one ending in
    ``high_channels`` image features (``high_nfeat``), the other in 42 HEMlets + 18 2D heatmaps;
    the heatmaps encoded to ``encoder_channels``; a 1x1 ``tail_channels`` conv and a 1x1 conv to
    ``18 x depth_bins`` volume logits; soft-argmax to joints in [-0.5, 0.5]. ``depth_range_m``:
    metres spanned by the depth axis of the volume (official: z_mm = z * 2000, root-relative).
    PoSh (hmrt design, the paper gives no layers): pooled ``posh_feature`` (``high`` = the
    upsampled image features, ``backbone`` = C5) and the root-relative joints through an FC
    block of ``posh_hidden`` and ``posh_blocks`` residual FC blocks to 24 rotation matrices,
    10 betas and a weak-perspective camera; ``mean_pose`` / ``mean_cam`` are added to the
    raw outputs.
    """

    name: str = "hemlets"
    variant: str = "paper"
    input_size: tuple[int, int] = (256, 256)
    # Pose network.
    backbone: str = "resnet50"
    backbone_width: float = 1.0
    heatmap_stride: int = 4
    branch_channels: int = 256
    high_channels: int = 1024
    encoder_channels: int = 256
    tail_channels: int = 1024
    depth_bins: int = 64
    depth_range_m: float = 2.0
    # PoSh body regressor.
    posh_feature: str = "high"
    posh_hidden: int = 1024
    posh_blocks: int = 2
    mean_pose: str = "apose"
    mean_cam: tuple[float, float, float] = (0.9, 0.0, 0.0)

    @property
    def feat_size(self) -> tuple[int, int]:
        """``(h, w)`` of the 2D heatmaps, HEMlets and volume (64x64 paper); the data pipeline
        renders dense targets at this size."""
        s = self.heatmap_stride
        return (self.input_size[0] // s, self.input_size[1] // s)

    @property
    def num_upsamples(self) -> int:
        """Deconvolutions per branch: stride 32 -> ``heatmap_stride`` (3 in the paper)."""
        return (BACKBONE_STRIDE // self.heatmap_stride).bit_length() - 1

    @property
    def heatmap_channels(self) -> int:
        """Channels of the HEMlets branch: 3 K HEMlets then N 2D heatmaps (official ``fb_nfeat``)."""
        return 3 * NUM_PARTS + NUM_JOINTS

    @classmethod
    def paper(cls) -> HemletsConfig:
        """The official pose network (ResNet-50, 3 deconvs, 64^3 volumes) + hmrt's PoSh."""
        return cls()

    @classmethod
    def edge(cls) -> HemletsConfig:
        """Same heads on DaNet-edge's MobileNetV2 (width 0.5, so its trained trunk can start
        training), 32x32 heatmaps (2 deconvs), 32 depth bins, narrow widths (docs/models/hemlets.md
        gives the cost: trainable on a 2-core CPU)."""
        return cls(
            variant="edge",
            backbone="mobilenetv2",
            backbone_width=0.5,
            heatmap_stride=8,
            branch_channels=96,
            high_channels=128,
            encoder_channels=64,
            tail_channels=256,
            depth_bins=32,
            posh_hidden=256,
        )

    def validate(self) -> None:
        super().validate()
        for field, allowed in (
            ("backbone", BACKBONES),
            ("posh_feature", POSH_FEATURES),
            ("mean_pose", ("apose", "tpose")),
        ):
            if getattr(self, field) not in allowed:
                raise InputError(
                    f"hemlets config {field}={getattr(self, field)!r} is not one of "
                    f"{', '.join(allowed)}"
                )
        if self.heatmap_stride not in (2, 4, 8, 16):
            raise InputError(
                f"hemlets config heatmap_stride={self.heatmap_stride}: use 2, 4, 8 or 16 "
                "(official 4: 64x64 maps at 256)"
            )
        if any(s % BACKBONE_STRIDE for s in self.input_size):
            raise InputError(f"input_size {self.input_size} must be a multiple of 32")
        if self.depth_bins < 2:
            raise InputError(f"depth_bins must be >= 2, got {self.depth_bins}")
        if self.depth_range_m <= 0:
            raise InputError(f"depth_range_m must be > 0, got {self.depth_range_m}")
        if self.backbone_width <= 0:
            raise InputError(f"backbone_width must be > 0, got {self.backbone_width}")
        for field in (
            "branch_channels",
            "high_channels",
            "encoder_channels",
            "tail_channels",
            "posh_hidden",
        ):
            if getattr(self, field) < 8:
                raise InputError(f"hemlets config {field} must be >= 8")
        if self.posh_blocks < 0:
            raise InputError(f"posh_blocks must be >= 0, got {self.posh_blocks}")
