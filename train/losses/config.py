"""Loss weights and norms: one dataclass, loadable from YAML, stored in every checkpoint.

Each term has a weight (0 switches it off) and, where the official DaNet code and the paper
disagree on the distance, a norm (``l1``, ``mse`` or ``smooth_l1``). The defaults and why each was
chosen are listed in docs/TRAINING.md ("Losses").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, TypeVar

from hmrt.runtime.errors import InputError

NORMS = ("l1", "mse", "smooth_l1")
HEATMAP_NORMS = ("kl", "mse")

# Terms trained during DaNet's IUV-only warm-up phase (the official `pretr_step`): the
# intermediate supervision of the IUV estimator; everything that needs the SMPL regressor waits.
PRETRAIN_TERMS = (
    "iuv_index",
    "iuv_ann",
    "iuv_uv",
    "part_iuv_index",
    "part_iuv_uv",
    "joints2d_roi",
    "heatmap",
)

DEFAULT_WEIGHTS: dict[str, float] = {
    # Intermediate (L_inter): global and partial IUV, RoI joint centres.
    "iuv_index": 1.0,
    "iuv_ann": 1.0,  # official loss_segAnn: 15-class coarse segmentation, auxiliary
    "iuv_uv": 1.0,
    "part_iuv_index": 1.0,
    "part_iuv_uv": 1.0,
    "joints2d_roi": 1.0,
    # Official code: 0 (its HRNet starts from COCO keypoint weights). From scratch the
    # coordinate loss alone stalls (docs/TRAINING.md), so heatmaps get dense supervision.
    "heatmap": 1.0,
    # Target (L_target): SMPL parameters, orthogonality, points, camera.
    "smpl_pose": 60.0,
    "smpl_betas": 0.1,
    "orth": 1.0,
    "vertices": 2.0,
    "joints3d": 5.0,
    "reproj": 2.0,
    "cam_scale": 1.0,
    # Refinement (L_refine): intermediate rotation and position heads.
    "refine_rot": 30.0,
    "refine_pos": 1.0,
}

DEFAULT_NORMS: dict[str, str] = {
    "iuv_uv": "l1",
    "part_iuv_uv": "l1",
    "joints2d_roi": "l1",
    "heatmap": "kl",
    "smpl_pose": "mse",
    "smpl_betas": "mse",
    "vertices": "l1",
    "joints3d": "l1",
    "reproj": "l1",
    "refine_rot": "mse",
    "refine_pos": "l1",
}


_C = TypeVar("_C", bound="DictConfig")


class DictConfig:
    """``to_dict``/``from_dict`` of every loss config dataclass: YAML and checkpoints store the
    plain dict, and an unknown key is an error that names the config (``LABEL``)."""

    LABEL: ClassVar[str] = "loss"

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form for YAML and checkpoints."""
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[_C], data: dict[str, Any] | None) -> _C:
        """Build from a (partial) dict; missing entries keep their defaults."""
        data = dict(data or {})
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        bad = sorted(set(data) - known)
        if bad:
            raise InputError(
                f"unknown key(s) {bad} in the {cls.LABEL} config; known: {sorted(known)}"
            )
        return cls(**data)


@dataclass
class LossConfig(DictConfig):
    """Weights (and norms) of every loss term; unknown names are rejected, not ignored."""

    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    norms: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_NORMS))
    # Weight of foreground pixels (GT part > 0) in the part-index CEs (background: 1).
    iuv_fg_weight: float = 1.0
    # Multiplies every term outside the IUV estimator (SMPL, points, camera, refinement). Adam
    # makes stage-2-only parameters invariant to it; it sets how hard those losses pull on the
    # shared IUV backbone through the U,V maps that feed stage 2.
    target_scale: float = 1.0
    heatmap_sigma: float = 1.0  # Gaussian std of heatmap targets, in heatmap pixels
    heatmap_pixel_offset: float = 0.0  # 0: DaNet's soft-argmax pixel mapping, 0.5: pixel centres
    heatmap_temperature: float = 10.0  # the model's soft-argmax temperature (DaNet: 10)
    cam_scale_k: float = 10.0  # SPIN's camera term: mean(exp(-k s)^2) keeps s positive

    def __post_init__(self) -> None:
        merged_w = dict(DEFAULT_WEIGHTS)
        merged_n = dict(DEFAULT_NORMS)
        for name, value in self.weights.items():
            if name not in DEFAULT_WEIGHTS:
                raise InputError(
                    f"unknown loss term '{name}' in loss.weights; known: {', '.join(DEFAULT_WEIGHTS)}"
                )
            merged_w[name] = float(value)
        for name, value in self.norms.items():
            if name not in DEFAULT_NORMS:
                raise InputError(
                    f"loss term '{name}' has no norm choice; terms with one: {', '.join(DEFAULT_NORMS)}"
                )
            allowed = HEATMAP_NORMS if name == "heatmap" else NORMS
            if value not in allowed:
                raise InputError(f"loss.norms.{name} = '{value}': use one of {', '.join(allowed)}")
            merged_n[name] = value
        self.weights = merged_w
        self.norms = merged_n
