"""HKMR's objective (paper Eq. 3; research seed-hkmr.md §2.1-2.2, §6) with hmrt's optional mesh
terms.

``L = sum_t ( l_smpl Lsmpl^t + l_3D L3D^t + l_2D L2D^t + l_KL L_KL^t )`` over the T outer steps,
every step weighted equally (the model's ``*_steps`` outputs, ``(N, T, ...)``):

=============  =======  =========================================================================
term           weight   definition (reduction)
=============  =======  =========================================================================
``pose``       1        Lsmpl, pose part: squared L2 of the 24 joints' axis-angle vs the label's,
                        the label taken as the equivalent rotation vector nearest to the
                        prediction (below); ``has_smpl``; **sum** over joints, xyz and steps
``betas``      1        Lsmpl, shape part: squared L2 of the 10 betas; ``has_smpl``; **sum**
``joints3d``   1        L3D: L1 of the 24 root-relative body joints (metres) vs the labels,
                        times ``joints3d_vis``; ``has_3d``; **sum** over joints, xyz and steps
``joints2d``   1        L2D: L1 of the 24 projected joints vs the labels in normalised crop
                        coordinates [-1, 1], times ``joints2d_vis``; **sum**
``kl``         0.01     L_KL: ``KL(q(z | theta_body) || N(0, I))`` of the frozen pose-prior
                        encoder on the 23 body joints' axis-angle (root excluded), nats; every
                        sample; **sum** over latent dimensions and steps
``vertices``   0        hmrt mesh term (DaNet's), not in the paper: L1 of the final step's
                        root-relative vertices, ``has_smpl``; **mean** over vertices and xyz
``cam_scale``  0        hmrt camera term (SPIN's), not in the paper: ``mean(exp(-k s)^2)`` over
                        samples and steps
=============  =======  =========================================================================

Reductions: the paper writes each term as a sum (``||.||^2_2`` over ``[Theta, beta]``,
``Sum_i ||.||_1`` over joints, the closed-form KL over latent dimensions) and Eq. 3 sums the
steps, so each is a per-sample sum over its joints, coordinates, parameters and steps, averaged
over the samples that carry the label (samples without it neither count nor dilute; a batch
without any gives an exact 0 in the graph). ``pose`` and ``betas`` are the two halves of the
paper's single ``||[Theta, beta] - [Theta*, beta*]||^2`` (same weight: the paper's form).

Weights: the paper gives none (its supplementary material was not available). In this sum
form the four supervised terms have the same order (at initialisation on synthetic samples, per
sample over the 3 steps: pose 43, betas 34, joints3d 38, joints2d 28; docs/TRAINING.md, "HKMR"),
so each gets 1; the KL (~42 nats a step with hmrt's prior) gets 0.01, about 2% of the keypoint
terms at the start, the top of the research notes' 1e-3 to 1e-2 range. The mesh terms are off:
on synthetic data every sample has its SMPL parameters, so Lsmpl already pins the mesh; turn on
``vertices`` (DaNet: 2) or ``cam_scale`` (1) from the config.

**Axis-angle labels.** The paper compares axis-angle vectors directly. A rotation has many
(``theta + 2 pi k`` along its axis, including the antipodal ``-(2 pi - theta)``); the labels
come from rotation matrices with ``theta`` in [0, pi], and the synthetic engine draws global
orientations over the whole circle, so a root near 180 degrees would give a large loss for a
prediction that is right up to the representation. The label is replaced (without gradient)
by its equivalent nearest to the prediction: the paper's loss wherever the two agree, and
continuous in the rotation. ``pose_form: rotmat`` is SPIN's alternative (squared error of the
rotation matrices, still summed), for the in-the-loop variant (HKMR_MF).

2D joints: from ``joints2d_steps`` (crop pixels, the model's own projection ``s (X + t)``),
normalised with the input size (``x_n = 2 px / W - 1``), the frame of the labels. Without step
outputs (a model in eval mode, a test toy) every term falls back to the final outputs as one
step. ``pretrain`` is accepted and ignored: HKMR trains end to end from the first step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
from torch import Tensor, nn

from hmrt.runtime.errors import InputError
from hmrt.train.losses import smpl
from hmrt.train.losses.config import DictConfig
from hmrt.train.losses.reduce import combine_masks, sample_mask, sample_sum_mean, weighted_total
from hmrt.train.rotations import matrix_to_axis_angle

HKMR_WEIGHTS: dict[str, float] = {
    "pose": 1.0,  # lambda_smpl (Theta)
    "betas": 1.0,  # lambda_smpl (beta)
    "joints3d": 1.0,  # lambda_3D
    "joints2d": 1.0,  # lambda_2D
    "kl": 0.01,  # lambda_KL
    "vertices": 0.0,  # hmrt's mesh term (not in the paper)
    "cam_scale": 0.0,  # SPIN's camera term (not in the paper)
}

POSE_FORMS = ("axis_angle", "rotmat")
BUNDLED_PRIOR = "weights/pose_prior.pt"
"""Where a bundled prior would live under ``hmrt.assets`` (used when ``loss.prior`` is empty)."""


@dataclass
class HkmrLossConfig(DictConfig):
    """Weights (0 switches a term off) and settings of HKMR's loss; unknown names are errors.

    ``prior``: the pose-prior file (``hmrt train-prior``'s ``pose_prior.pt``; empty: the
    bundled ``assets/weights/pose_prior.pt``), read only when ``kl`` is on. ``pose_form``:
    ``axis_angle`` (the paper) or ``rotmat`` (SPIN). ``cam_scale_k``: k of ``exp(-k s)^2``.
    """

    LABEL: ClassVar[str] = "hkmr loss"

    weights: dict[str, float] = field(default_factory=lambda: dict(HKMR_WEIGHTS))
    prior: str = ""
    pose_form: str = "axis_angle"
    cam_scale_k: float = 10.0

    def __post_init__(self) -> None:
        merged = dict(HKMR_WEIGHTS)
        for name, value in (self.weights or {}).items():
            if name not in HKMR_WEIGHTS:
                raise InputError(
                    f"unknown name '{name}' in loss.weights; known: {', '.join(HKMR_WEIGHTS)}"
                )
            merged[name] = float(value)
        self.weights = merged
        if self.pose_form not in POSE_FORMS:
            raise InputError(
                f"loss.pose_form = '{self.pose_form}': use one of {', '.join(POSE_FORMS)}"
            )
        self.prior = str(self.prior or "")

    def prior_path(self) -> Path:
        """The prior file to load: ``prior`` or the bundled one; :class:`InputError` with the
        fix when neither exists."""
        if self.prior:
            return Path(self.prior)
        from hmrt.assets import asset_path

        path = asset_path(BUNDLED_PRIOR)
        if not path.is_file():
            raise InputError(
                "hkmr loss: loss.prior is empty and no pose prior is bundled "
                f"(assets/{BUNDLED_PRIOR}); train one with `hmrt train-prior --out "
                "runs/pose_prior` and set loss.prior: runs/pose_prior/pose_prior.pt, or switch "
                "the term off with loss.weights.kl: 0"
            )
        return path


def nearest_rotation_vector(target: Tensor, pred: Tensor) -> Tensor:
    """The rotation vector equivalent to ``target`` (``(..., 3)``, angle in [0, pi]) closest to
    ``pred``: ``axis * (theta + 2 pi k)`` with the integer ``k`` nearest to the prediction's
    component along the axis. No gradient (a label). A zero label takes the prediction's axis,
    so a prediction of a full turn is matched to the full turn."""
    with torch.no_grad():
        target, pred = target.float(), pred.float()
        angle = torch.linalg.vector_norm(target, dim=-1, keepdim=True)
        pred_norm = torch.linalg.vector_norm(pred, dim=-1, keepdim=True)
        axis = torch.where(
            angle > 1e-6,
            target / angle.clamp(min=1e-6),
            pred / pred_norm.clamp(min=1e-6),
        )
        along = (pred * axis).sum(dim=-1, keepdim=True)
        k = torch.round((along - angle) / (2.0 * math.pi))
        return axis * (angle + 2.0 * math.pi * k)


def steps_of(pred: dict, key: str) -> Tensor | None:
    """``pred[key + "_steps"]`` ``(N, T, ...)``, else the final output as one step, else None."""
    value = pred.get(f"{key}_steps")
    if value is None:
        value = pred.get(key)
        value = None if value is None else value.unsqueeze(1)
    return value


def pose_steps(pred: dict) -> Tensor | None:
    """The predicted axis-angle pose ``(N, T, 24, 3)``: ``pose_aa_steps``, else converted from
    the rotation matrices (steps or final), else None."""
    p = pred.get("pose_aa_steps")
    if p is None:
        r = steps_of(pred, "rotmats")
        p = None if r is None else matrix_to_axis_angle(r)
    return p


class HkmrCriterion(nn.Module):
    """Weighted sum of HKMR's terms; ``forward(pred, batch, pretrain) -> (total, raw)``.

    ``prior``: the frozen pose-prior encoder (:func:`hmrt.train.prior.load_pose_prior`; None
    when ``kl`` is off); ``body``: the body layer that poses ground-truth meshes for
    ``vertices`` and evaluation. Use :meth:`for_model` to get both from a built model and the
    config.
    """

    def __init__(
        self,
        config: HkmrLossConfig | None = None,
        prior: nn.Module | None = None,
        body: nn.Module | None = None,
    ):
        super().__init__()
        self.config = config or HkmrLossConfig()
        if self.config.weights["kl"] != 0 and prior is None:
            raise InputError("hkmr loss: the kl term needs a pose prior (loss.prior)")
        self.prior = prior
        if prior is not None:
            prior.eval()
            prior.requires_grad_(False)
        self.body = body
        self.terms = {
            "pose": self._pose,
            "betas": self._betas,
            "joints3d": self._joints3d,
            "joints2d": self._joints2d,
            "kl": self._kl,
            "vertices": self._vertices,
            "cam_scale": self._cam_scale,
        }
        self.skipped: set[str] = set()

    @classmethod
    def for_model(cls, model: nn.Module, config: HkmrLossConfig | None = None) -> HkmrCriterion:
        """The criterion for a built HKMR model: the config's pose prior (loaded only when
        ``kl`` is on) and the model's body layer."""
        from hmrt.train.evaluate import gt_body_layer

        if config is None or isinstance(config, dict):
            config = HkmrLossConfig.from_dict(config)
        prior = None
        if config.weights["kl"] != 0:
            from hmrt.train.prior.file import load_pose_prior

            prior = load_pose_prior(config.prior_path())
        return cls(config, prior=prior, body=gt_body_layer(model))

    def train(self, mode: bool = True) -> HkmrCriterion:
        """Mode switch that leaves the prior in eval mode (its BatchNorm statistics are part of
        the trained prior; a training-mode pass would change them and batch-normalise)."""
        super().train(mode)
        if self.prior is not None:
            self.prior.eval()
        return self

    # -- ground truth ----------------------------------------------------------------------
    def _gt_vertices(self, batch: dict, cache: dict) -> Tensor | None:
        """Ground-truth vertices relative to the body layer's root joint (cached per call)."""
        return smpl.gt_vertices(
            self.body, batch.get("vertices"), batch.get("rotmats"), batch.get("betas"), cache
        )

    # -- the paper's terms -----------------------------------------------------------------
    def _pose(self, pred, batch, cache):
        rot = batch.get("rotmats")
        if rot is None:
            return None
        has = batch.get("has_smpl")
        if self.config.pose_form == "rotmat":
            r = steps_of(pred, "rotmats")
            if r is None:
                return None
            err = (r.float() - rot.float()[:, None]).square()  # (N, T, 24, 3, 3)
            return sample_sum_mean(err, sample_mask(has, err))
        p = pose_steps(pred)
        if p is None:
            return None
        gt = matrix_to_axis_angle(rot.float())[:, None].expand_as(p)
        err = (p.float() - nearest_rotation_vector(gt, p)).square()  # (N, T, 24, 3)
        return sample_sum_mean(err, sample_mask(has, err))

    def _betas(self, pred, batch, cache):
        b, g = steps_of(pred, "betas"), batch.get("betas")
        if b is None or g is None:
            return None
        err = (b.float() - g.float()[:, None, : b.shape[-1]]).square()  # (N, T, 10)
        return sample_sum_mean(err, sample_mask(batch.get("has_smpl"), err))

    def _joints3d(self, pred, batch, cache):
        j, g = steps_of(pred, "joints3d"), batch.get("joints3d")
        if j is None or g is None:
            return None
        j = j.float() - j[:, :, :1].float()
        g = (g.float() - g[:, :1].float())[:, None]
        err = (j - g).abs()  # (N, T, 24, 3)
        vis = batch.get("joints3d_vis")
        conf = None if vis is None else vis.float()[:, None, :, None]
        weight = combine_masks(sample_mask(batch.get("has_3d"), err), conf)
        return sample_sum_mean(err, weight)

    def _joints2d(self, pred, batch, cache):
        px, g = steps_of(pred, "joints2d"), batch.get("joints2d")
        if px is None or g is None:
            return None
        h, w = batch["image"].shape[-2:]
        scale = px.new_tensor([2.0 / w, 2.0 / h])
        norm = px.float() * scale - 1.0  # crop pixels -> [-1, 1]
        err = (norm - g.float()[:, None, :, :2]).abs()  # (N, T, 24, 2)
        vis = batch.get("joints2d_vis")
        weight = torch.ones_like(err[..., :1]) if vis is None else vis.float()[:, None, :, None]
        return sample_sum_mean(err, weight)

    def _kl(self, pred, batch, cache):
        p = pose_steps(pred)
        if p is None or self.prior is None:
            return None
        kl = self.prior.kl(p[:, :, 1:].float())  # (N, T): the 23 body joints of every step
        return kl.sum(dim=1).mean()

    # -- hmrt's optional terms -------------------------------------------------------------
    def _vertices(self, pred, batch, cache):
        v, g = pred.get("vertices"), self._gt_vertices(batch, cache)
        if v is None or g is None:
            return None
        return smpl.vertex_loss(v, g, batch.get("has_smpl"), "l1")

    def _cam_scale(self, pred, batch, cache):
        cam = steps_of(pred, "cam")
        if cam is None:
            return None
        return smpl.cam_scale_loss(cam.flatten(0, 1), self.config.cam_scale_k)

    # -- total -----------------------------------------------------------------------------
    def forward(
        self, pred: dict, batch: dict, pretrain: bool = False
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Weighted total and the raw (unweighted, detached) value of every computed term."""
        return weighted_total(self.terms, self.config.weights, pred, batch, self.skipped)
