"""HKMR's configuration: the ``paper`` preset (seed-hkmr.md §1.9 / §6 defaults) and ``edge``.

The paper gives the structure (six chains, per-joint FC heads run forward and backward, the
order root -> children -> shape -> camera, T outer steps) but no layer sizes; every open choice is
a field here with the research file's default, so ablations (forward only, no joint hierarchy,
8 inner passes) are config overrides and a checkpoint's config rebuilds the exact network.
"""

from __future__ import annotations

from dataclasses import dataclass

from hmrt.runtime.errors import InputError
from hmrt.train.models.config import ModelConfig

BACKBONES = ("resnet50", "resnet18", "mobilenetv2")
PASS_ORDERS = ("forward_backward", "forward")
HIERARCHIES = ("all", "previous")
SHAPE_UPDATES = ("residual", "absolute")


@dataclass(frozen=True)
class HkmrConfig(ModelConfig):
    """All HKMR hyper-parameters; defaults are the ``paper`` variant.

    Encoder: ``backbone`` (``resnet50``/``resnet18`` with stage widths ``64 x backbone_width x
    (1, 2, 4, 8)``, or ``mobilenetv2`` to its 320-channel stride-32 stage) and global average
    pooling to the feature Φ. Regressor (seed-hkmr.md §1.4-§1.9): each chain's embedding E_c
    is ``embed_layers`` Linear + ReLU layers of width ``embed_dim`` on ``[Φ, β, θ_root (children),
    θ_c]``; per-joint heads are single Linear layers to 3 numbers (no activation) initialised
    with Xavier gain ``head_init_gain``; ``inner_passes`` passes per chain and outer step,
    ``pass_order`` ``forward_backward`` (alternating, forward first: the paper) or ``forward``
    (the paper's "forward only" ablation); ``joint_hierarchy`` ``all`` (a head sees every
    residual already predicted in its pass, most recent first: Eq. 1) or ``previous`` (only the
    immediately preceding joint: the "no joint hierarchy" ablation). Shape net S and camera net
    C: ``Linear(F+82 -> hidden) + ReLU + Linear(hidden -> 10 | 3)``; S is a residual on β
    (``shape_update``), C a residual on ``mean_cam``. ``dropout`` after E_c/S/C hidden layers.
    ``outer_steps`` T. Θ⁰ is ``mean_pose`` (hmrt's upright mean, as axis-angle), β⁰ = 0.
    """

    name: str = "hkmr"
    variant: str = "paper"
    input_size: tuple[int, int] = (224, 224)
    # Encoder.
    backbone: str = "resnet50"
    backbone_width: float = 1.0
    # Regressor.
    embed_dim: int = 128
    embed_layers: int = 1
    shape_hidden: int = 256
    cam_hidden: int = 256
    dropout: float = 0.0
    outer_steps: int = 3
    inner_passes: int = 4
    pass_order: str = "forward_backward"
    joint_hierarchy: str = "all"
    shape_update: str = "residual"
    head_init_gain: float = 0.01
    mean_pose: str = "apose"
    mean_cam: tuple[float, float, float] = (0.9, 0.0, 0.0)

    @classmethod
    def paper(cls) -> HkmrConfig:
        """ResNet-50 + the §1.9 regressor (d = 128, S/C hidden 256): 26.22 M parameters."""
        return cls()

    @classmethod
    def edge(cls) -> HkmrConfig:
        """The same regressor on DaNet-edge's encoder, a half-width MobileNetV2 (Φ = 160), so
        training can start from DaNet-edge's trained backbone (from scratch it stayed at the
        mean pose: docs/models/hkmr.md, "edge variant")."""
        return cls(variant="edge", backbone="mobilenetv2", backbone_width=0.5)

    def validate(self) -> None:
        super().validate()
        choices = {
            "backbone": BACKBONES,
            "pass_order": PASS_ORDERS,
            "joint_hierarchy": HIERARCHIES,
            "shape_update": SHAPE_UPDATES,
            "mean_pose": ("apose", "tpose"),
        }
        for field, allowed in choices.items():
            if getattr(self, field) not in allowed:
                raise InputError(
                    f"hkmr config {field}={getattr(self, field)!r} is not one of "
                    f"{', '.join(allowed)}"
                )
        if any(s % 32 for s in self.input_size):
            raise InputError(f"input_size {self.input_size} must be a multiple of 32")
        if self.backbone_width <= 0:
            raise InputError(f"backbone_width must be > 0, got {self.backbone_width}")
        for field in ("embed_dim", "shape_hidden", "cam_hidden"):
            if getattr(self, field) < 8:
                raise InputError(f"hkmr config {field} must be >= 8")
        for field in ("embed_layers", "outer_steps", "inner_passes"):
            if getattr(self, field) < 1:
                raise InputError(f"hkmr config {field} must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise InputError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.head_init_gain < 0:
            raise InputError(f"head_init_gain must be >= 0, got {self.head_init_gain}")
