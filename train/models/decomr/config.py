"""DecoMR's configuration: the ``paper`` preset (released official model) and the ``edge`` preset.

Every architectural choice is a field, so ``build("decomr", "edge", hg_max_channels=64)`` or a
checkpoint's config dict rebuilds the exact network.
"""

from __future__ import annotations

from dataclasses import dataclass

from hmrt.runtime.errors import InputError
from hmrt.train.models.config import ModelConfig

BACKBONE_CHANNELS: dict[str, tuple[int, ...]] = {
    # channels of [input, stem (stride 2), layer1 (4), layer2 (8), layer3 (16), layer4 (32)]:
    # the official ``channel_list``; the decoder maps entry i+1 -> i and adds encoder entry i.
    "resnet50": (3, 64, 256, 512, 1024, 2048),
    "resnet34": (3, 64, 64, 128, 256, 512),
    "resnet18": (3, 64, 64, 128, 256, 512),
    # MobileNetV2 encoder: the decoder keeps ResNet-18's widths; 1x1 laterals (CNet.lateral)
    # map the MobileNetV2 stages (stride 4..32) to them, so the decoder and LNet are unchanged.
    "mobilenetv2": (3, 64, 64, 128, 256, 512),
}

MOBILENET_STAGES: dict[int, int] = {2: 1, 4: 3, 8: 6, 16: 13, 32: 17}
"""MobileNetV2 ``features`` index whose output is the encoder's feature at each stride."""

# How the feature transfer reads the predicted IUV: hmrt's chart convention (v toward the head,
# half-texel centres) or the released official weights' (v downward, round(u (S-1))).
UV_CONVENTIONS = ("hmrt", "official")


@dataclass(frozen=True)
class DecoMRConfig(ModelConfig):
    """All DecoMR hyper-parameters; defaults are the ``paper`` variant (released config
    ``h36m_up3d``: ``warp_level 2, uv_res 128, uv_channels 64, norm_type GN, uv_type BF``).

    CNet: ``backbone`` ResNet (stage widths ``backbone_width`` x 1, 2, 4, 8) or ``mobilenetv2``
    (width multiplier ``mobilenet_width``, 1x1 laterals to ResNet-18's widths scaled by
    ``backbone_width / 64``; hmrt's edge encoder, so training can start from DaNet-edge's
    trained MobileNetV2) whose stride ``2**warp_level`` features (after a nearest-upsample
    + :class:`ConvBottleNeck` decoder with additive skips) predict the IUV (mask + continuous
    UV, sigmoid) and are the local feature. Transfer: features splatted into a ``warp_res``
    UV grid where the predicted mask exceeds ``mask_threshold``. LNet: ``fc_head`` (global
    feature, ``global_channels``) and ``camera`` MLPs of width ``head_hidden`` on the pooled
    backbone code; ``uv_conv1`` 1x1 convs; :class:`HgNet` with ``hg_levels`` levels (channels
    doubling, capped at ``hg_max_channels`` when > 0); ``uv_conv2``/``decoder``/``uv_end`` to
    the ``uv_res`` location map with ``uv_channels`` base width. ``norm`` ``GN`` (released) or
    ``BN``. ``mean_cam`` initialises the camera's last bias (hmrt choice; the official head
    starts at zero), so untrained models project into the crop. ``uv_convention``: how the
    predicted IUV's V channel and texel index are read by the feature transfer: ``hmrt``
    (``v`` toward the head, texel ``floor(u S)``; what hmrt trains) or ``official`` (``v``
    downward, texel ``round(u (S-1))``; what the released weights predict, so
    ``hmrt import-checkpoint`` sets it and the weights load unchanged).
    """

    name: str = "decomr"
    variant: str = "paper"
    backbone: str = "resnet50"
    backbone_width: int = 64
    mobilenet_width: float = 0.5
    norm: str = "GN"
    warp_level: int = 2
    warp_res: int = 64
    uv_res: int = 128
    uv_channels: int = 64
    global_channels: int = 256
    head_hidden: int = 512
    hg_levels: int = 3
    hg_max_channels: int = 0
    mask_threshold: float = 0.5
    mean_cam: tuple[float, float, float] = (0.9, 0.0, 0.0)
    uv_convention: str = "hmrt"

    @property
    def channel_list(self) -> tuple[int, ...]:
        """The backbone's per-stride channels (official ``channel_list``), scaled by
        ``backbone_width / 64`` (64 = the standard ResNet; the edge preset halves it)."""
        scale = self.backbone_width / 64
        full = BACKBONE_CHANNELS[self.backbone]
        return tuple(c if i == 0 else int(c * scale) for i, c in enumerate(full))

    @property
    def stage_widths(self) -> tuple[int, ...]:
        """The ResNet's per-stage base widths (torchvision: 64, 128, 256, 512 x the scale)."""
        return tuple(self.backbone_width * 2**i for i in range(4))

    @property
    def warp_channels(self) -> int:
        """Channels of the local feature ``dp_feature`` (256 for ResNet-50 at warp level 2)."""
        return self.channel_list[self.warp_level]

    @property
    def code_channels(self) -> int:
        """Channels of the pooled backbone code (2048 for ResNet-50)."""
        return self.channel_list[-1]

    @property
    def iuv_size(self) -> tuple[int, int]:
        """``(height, width)`` of the IUV / local feature maps (56x56 at 224)."""
        s = 2**self.warp_level
        return (self.input_size[0] // s, self.input_size[1] // s)

    @property
    def feat_size(self) -> tuple[int, int]:
        """The size dense training targets are rendered at (the data pipeline reads
        ``feat_size``, DaNet's name): the IUV size."""
        return self.iuv_size

    @property
    def uv_upsamples(self) -> int:
        """Number of x2 stages of the LNet ``decoder`` from ``warp_res`` to ``uv_res``."""
        return (self.uv_res // self.warp_res).bit_length() - 1

    @classmethod
    def paper(cls) -> DecoMRConfig:
        """The released official model: ResNet-50, GN, 64x64 transfer, 3-level hourglass."""
        return cls()

    @property
    def mobilenet(self) -> bool:
        """Whether CNet's encoder is MobileNetV2 (else a torchvision-layout ResNet)."""
        return self.backbone == "mobilenetv2"

    @classmethod
    def edge(cls) -> DecoMRConfig:
        """Same structure on DaNet-edge's encoder (MobileNetV2 at width 0.5, laterals to a
        half-width ResNet-18 decoder: 32-256 channels) with the hourglass capped at 128 channels,
        narrow heads and the location map at 64x64 (the 128x128 decoder stage was two thirds of
        a training step); docs/models/decomr.md gives the cost and the reasons: trainable on a
        2-core CPU, from DaNet-edge's trained encoder."""
        return cls(
            variant="edge",
            backbone="mobilenetv2",
            backbone_width=32,
            mobilenet_width=0.5,
            uv_channels=32,
            global_channels=64,
            head_hidden=256,
            hg_max_channels=128,
            uv_res=64,  # the location map at the transfer's 64x64: no 128x128 decoder stage
        )

    def validate(self) -> None:
        super().validate()
        if self.backbone not in BACKBONE_CHANNELS:
            raise InputError(
                f"decomr config backbone={self.backbone!r} is not one of "
                f"{', '.join(BACKBONE_CHANNELS)}"
            )
        if self.backbone_width < 16 or self.backbone_width % 16:
            raise InputError(
                f"decomr config backbone_width={self.backbone_width}: use a multiple of 16 "
                "(64 = standard ResNet, 32 = the edge preset)"
            )
        if self.mobilenet and not 0.0 < self.mobilenet_width <= 2.0:
            raise InputError(
                f"decomr config mobilenet_width={self.mobilenet_width}: use a width multiplier "
                "in (0, 2] (0.5 = the edge preset, DaNet-edge's encoder)"
            )
        if self.norm not in ("GN", "BN"):
            raise InputError(f"decomr config norm={self.norm!r}: use GN or BN")
        if self.warp_level not in (1, 2, 3):
            raise InputError(f"decomr config warp_level={self.warp_level}: use 1, 2 or 3")
        ratio = self.uv_res // self.warp_res
        if self.uv_res % self.warp_res or ratio & (ratio - 1):
            raise InputError(
                f"decomr config uv_res={self.uv_res} must be warp_res ({self.warp_res}) times a "
                "power of two (official: 128 = 64 x 2)"
            )
        if any(s % 32 for s in self.input_size):
            raise InputError(f"input_size {self.input_size} must be a multiple of 32 (ResNet)")
        if self.warp_res % 2**self.hg_levels or self.hg_levels < 1:
            raise InputError(
                f"warp_res {self.warp_res} must be divisible by 2**hg_levels ({2**self.hg_levels})"
            )
        if self.uv_convention not in UV_CONVENTIONS:
            raise InputError(
                f"decomr config uv_convention={self.uv_convention!r}: use "
                f"{' or '.join(UV_CONVENTIONS)}"
            )
        if not 0.0 < self.mask_threshold < 1.0:
            raise InputError(f"mask_threshold must be in (0, 1), got {self.mask_threshold}")
        for field in ("uv_channels", "global_channels", "head_hidden"):
            if getattr(self, field) < 16 or getattr(self, field) % 8:
                raise InputError(f"decomr config {field} must be a multiple of 8, >= 16")
