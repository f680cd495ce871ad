"""BoBW's configuration: the ``paper`` preset and the ``edge`` preset.

BoBW has no official code (shared/research/seed-bobw.md §5.1); its DMP is DecoMR's CNet family
and its UVI DecoMR's UVNet layout, so the config extends :class:`DecoMRConfig` (same backbone,
decoder, transfer and hourglass fields) with the dense-map heads, the two IK MLPs and the UVI
inputs. Every choice the paper leaves open is a field; docs/models/bobw.md gives each reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from hmrt.runtime.errors import InputError
from hmrt.train.models.decomr.config import DecoMRConfig


@dataclass(frozen=True)
class BoBWConfig(DecoMRConfig):
    """All BoBW hyper-parameters; defaults are the ``paper`` variant.

    DMP (DecoMR ``DPNet`` + three linear dense heads): ``dense_head_channels`` is the width of
    each head's ``ConvBottleNeck`` before its 1x1 conv to 3 channels (location, joint and
    displacement maps, root-relative metres). Transfer: the local feature and the 9 dense
    channels are splatted together to ``warp_res``. IK: joint inpaint-and-refine MLP
    (Martinez: ``ik_hidden`` wide, ``ik_stages`` residual stages of two Linear layers,
    ``ik_dropout``; ``ik_vis_input`` appends the 14 visibility flags to its input) and GIK-Net
    (``gik_hidden``, ``gik_stages``) to axis-angle pose and betas. UVI: DecoMR's UVNet on
    ``[UV features, DMP maps, IK maps]`` plus the broadcast global feature (``uvi_global``) and
    the reference T-pose map (``uvi_ref_map``), decoding the location, joint and displacement
    maps at ``uv_res``; with ``uvi_residual`` (hmrt's choice) it predicts them as a correction of
    the IK maps rasterised at ``uv_res``, last layer zero at init, so an untrained UVI returns
    the IK mesh instead of noise. ``uv_convention`` is fixed to ``hmrt`` (there are no official weights).
    """

    name: str = "bobw"
    dense_head_channels: int = 32
    ik_hidden: int = 256
    ik_stages: int = 2
    ik_dropout: float = 0.5
    ik_vis_input: bool = False
    gik_hidden: int = 1024
    gik_stages: int = 2
    uvi_global: bool = True
    uvi_ref_map: bool = True
    uvi_residual: bool = True

    @classmethod
    def paper(cls) -> BoBWConfig:
        """The paper's setting: ResNet-50 DMP at 224, DecoMR's UVNet sizing, 64 -> 128 UV."""
        return cls()

    @classmethod
    def edge(cls) -> BoBWConfig:
        """DecoMR-edge's DMP (DaNet-edge's MobileNetV2 at width 0.5, laterals to a half-width
        ResNet-18 decoder) and capped UVI hourglass; the IK MLPs are already small
        (docs/models/bobw.md gives the cost)."""
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
            gik_hidden=512,
        )

    def validate(self) -> None:
        super().validate()
        if self.uv_convention != "hmrt":
            raise InputError(
                "bobw config uv_convention must be 'hmrt' (BoBW has no official weights)"
            )
        for field in ("dense_head_channels", "ik_hidden", "gik_hidden"):
            if getattr(self, field) < 8:
                raise InputError(f"bobw config {field} must be >= 8, got {getattr(self, field)}")
        for field in ("ik_stages", "gik_stages"):
            if getattr(self, field) < 0:
                raise InputError(f"bobw config {field} must be >= 0, got {getattr(self, field)}")
        if not 0.0 <= self.ik_dropout < 1.0:
            raise InputError(f"bobw config ik_dropout must be in [0, 1), got {self.ik_dropout}")
