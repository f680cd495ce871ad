"""HEMlets PoSh's objective (paper Eq. 3-11; research seed-hemlets-posh.md §2.1, §6.3) plus the
mesh terms every hmrt body model trains with.

``L = alpha (L_HEM + L_2D) + L3D_lambda + L_theta + L_beta + L_mesh-extras``:

================  =======  ======================================================================
term              weight   definition (reduction)
================  =======  ======================================================================
``hem``           1 x a    Eq. 3, L_HEM: squared error of the 42 HEMlets maps vs the triplet
                           targets, masked by Lambda (per part); **sum** over maps and pixels
``heatmap2d``     1 x a    Eq. 4, L_2D: squared error of the 18 2D heatmaps vs peak-1 Gaussians,
                           joints known in 2D; **sum** over joints and pixels
``joints_vol``    1        Eq. 6, L3D_lambda: L1 of the soft-argmax joints (normalised volume
                           coordinates) vs the targets; x, y where known in 2D, z only with 3D
                           labels (lambda = 0 otherwise); **sum** over joints and coordinates
``rotmats``       1        Eq. 9, L_theta: Frobenius norm of ``R_gt - R_hat`` per joint, **sum**
                           over the 24 joints; on ``rotmats_raw`` (before the SO(3) projection,
                           ``rotmat_source``), samples with ``has_smpl``
``betas``         1        Eq. 10, L_beta: L1 of the 10 shape coefficients, **sum**
``vertices``      2        hmrt mesh term (DaNet's): L1 of root-relative vertices, **mean**
``joints3d``      5        hmrt mesh term: L1 of the body layer's 24 root-relative joints, **mean**
``reproj``        2        hmrt mesh term: 24 joints through ``cam`` vs visible 2D joints in
                           [-1, 1], L1, **mean**
``cam_scale``     1        hmrt mesh term: SPIN's ``mean(exp(-10 s)^2)`` keeps ``s`` positive
================  =======  ======================================================================

``a = alpha = 0.05`` (Eq. 8, "in all our experiments"). Reductions (§6.3: the paper does not
say): the paper's own terms are written as sums (``||.||^2_2`` over maps, ``Sum_n`` over joints,
``Sum_i`` over rotations and betas), and alpha = 0.05 only balances them when the map terms are
sums over pixels (per sample L_HEM + L_2D is then ~300 at initialisation against L3D ~5; as
pixel means it would be ~1e-3 and alpha would switch intermediate supervision off). So each of
them is a per-sample sum, averaged over the samples that carry the label (samples without it
neither count nor dilute, as every hmrt loss). The mesh terms the paper does not have keep
DaNet's definitions and weights (element means), so the mesh and camera are supervised exactly
as in hmrt's other parametric model; the paper's ``L_mesh = L_theta + L_beta + L_tot`` is the
config with those four weights set to 0.

Why ``rotmats_raw``: the SVD projection to SO(3) has ill-conditioned gradients where singular
values meet, while L_theta on the raw 3x3 both fits the rotation and pulls the raw matrix onto
SO(3), where the projection is the identity; the projected rotations are still trained through
the vertices, joints and reprojection (they drive the body layer). ``rotmat_source:
projected`` supervises the projected ones instead.

Targets are made on the batch by :mod:`hmrt.train.losses.hemlets_targets` (conventions there).
``pretrain=True`` (``--pretrain-iuv-steps``) keeps the pose network's terms only (``hem``,
``heatmap2d``, ``joints_vol``): the ICCV'19 HEMlets pose network trained before PoSh is added.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor, nn

from hmrt.runtime.errors import InputError
from hmrt.train.losses import hemlets_targets as T
from hmrt.train.losses import keypoints, smpl
from hmrt.train.losses.config import DictConfig
from hmrt.train.losses.reduce import sample_mask, sample_sum_mean, weighted_total

HEMLETS_WEIGHTS: dict[str, float] = {
    "hem": 1.0,  # times alpha (Eq. 8)
    "heatmap2d": 1.0,  # times alpha
    "joints_vol": 1.0,  # L3D_lambda
    "rotmats": 1.0,  # L_theta
    "betas": 1.0,  # L_beta
    "vertices": 2.0,  # DaNet's mesh terms (not in the paper)
    "joints3d": 5.0,
    "reproj": 2.0,
    "cam_scale": 1.0,
}

INTERMEDIATE_TERMS = ("hem", "heatmap2d")
"""L_int: multiplied by ``alpha``."""

POSE_TERMS = ("hem", "heatmap2d", "joints_vol")
"""The pose network's terms (``pretrain=True``)."""

ROTMAT_SOURCES = ("raw", "projected")


@dataclass
class HemletsLossConfig(DictConfig):
    """Weights (0 switches a term off) and target settings of HEMlets' loss; unknown names are
    errors. ``alpha`` multiplies ``hem`` and ``heatmap2d`` (Eq. 8); ``heatmap_sigma`` is the
    Gaussian std in map pixels; ``eps_ratio`` the adaptive T^0 band ``eps_k = ratio |B_k|``."""

    LABEL: ClassVar[str] = "hemlets loss"

    weights: dict[str, float] = field(default_factory=lambda: dict(HEMLETS_WEIGHTS))
    alpha: float = 0.05
    heatmap_sigma: float = 1.5
    eps_ratio: float = 0.5
    rotmat_source: str = "raw"
    cam_scale_k: float = 10.0

    def __post_init__(self) -> None:
        merged = dict(HEMLETS_WEIGHTS)
        for name, value in (self.weights or {}).items():
            if name not in HEMLETS_WEIGHTS:
                raise InputError(
                    f"unknown name '{name}' in loss.weights; known: {', '.join(HEMLETS_WEIGHTS)}"
                )
            merged[name] = float(value)
        self.weights = merged
        if self.rotmat_source not in ROTMAT_SOURCES:
            raise InputError(
                f"loss.rotmat_source = '{self.rotmat_source}': use one of "
                f"{', '.join(ROTMAT_SOURCES)}"
            )
        if self.heatmap_sigma <= 0:
            raise InputError(f"loss.heatmap_sigma must be > 0, got {self.heatmap_sigma}")


class HemletsCriterion(nn.Module):
    """Weighted sum of HEMlets PoSh's terms; ``forward(pred, batch, pretrain) -> (total, raw)``.

    ``joint_map (18, 24)`` maps the body's joints to HEMlets' (from ``body_to_hemlets``),
    ``parts (14, 2)`` the (parent, child) pairs, ``body`` the body layer that poses
    ground-truth meshes for ``vertices``; ``depth_range_m`` the volume's depth span. Use
    :meth:`for_model` to take all of them from a built model.
    """

    def __init__(
        self,
        config: HemletsLossConfig | None,
        joint_map: Tensor,
        parts: Tensor,
        body: nn.Module | None = None,
        depth_range_m: float = 2.0,
        root: int = 0,
    ):
        super().__init__()
        self.config = config or HemletsLossConfig()
        self.body = body
        self.depth_range_m = float(depth_range_m)
        self.root = int(root)
        self.register_buffer("joint_map", joint_map.float(), persistent=False)
        self.register_buffer("parts", torch.as_tensor(parts).long(), persistent=False)
        self.terms = {
            "hem": self._hem,
            "heatmap2d": self._heatmap2d,
            "joints_vol": self._joints_vol,
            "rotmats": self._rotmats,
            "betas": self._betas,
            "vertices": self._vertices,
            "joints3d": self._joints3d,
            "reproj": self._reproj,
            "cam_scale": self._cam_scale,
        }
        self.skipped: set[str] = set()

    @classmethod
    def for_model(
        cls, model: nn.Module, config: HemletsLossConfig | None = None
    ) -> HemletsCriterion:
        """The criterion for a built HEMlets model: its joint map, parts, depth range and body
        layer."""
        from hmrt.train.models.hemlets.joints import HEMLETS_PARTS, body_to_hemlets

        if isinstance(config, dict):
            config = HemletsLossConfig.from_dict(config)
        head = getattr(model, "body", None)
        body = getattr(head, "layer", head)
        depth = float(getattr(getattr(model, "config", None), "depth_range_m", 2.0))
        w = T.joint_map_matrix(body_to_hemlets)
        return cls(config, w, torch.tensor(HEMLETS_PARTS), body=body, depth_range_m=depth)

    # -- targets ---------------------------------------------------------------------------
    def targets(self, pred: dict, batch: dict, cache: dict) -> T.HemletsTargets | None:
        """This batch's HEMlets targets at the size of the predicted maps (cached per call)."""
        if "targets" in cache:
            return cache["targets"]
        maps = pred.get("heatmaps2d", pred.get("hemlets"))
        j2, j3 = batch.get("joints2d"), batch.get("joints3d")
        out = None
        if maps is not None and j2 is not None and j3 is not None:
            out = T.make_targets(
                j2,
                j3,
                self.joint_map,
                self.parts,
                tuple(maps.shape[-2:]),
                vis2d=batch.get("joints2d_vis"),
                vis3d=batch.get("joints3d_vis"),
                has_3d=batch.get("has_3d"),
                sigma=self.config.heatmap_sigma,
                eps_ratio=self.config.eps_ratio,
                depth_range_m=self.depth_range_m,
                root=self.root,
            )
        cache["targets"] = out
        return out

    def _gt_vertices(self, batch: dict, cache: dict) -> Tensor | None:
        """Ground-truth vertices relative to the body layer's root joint (cached per call)."""
        return smpl.gt_vertices(
            self.body, batch.get("vertices"), batch.get("rotmats"), batch.get("betas"), cache
        )

    # -- the paper's terms -----------------------------------------------------------------
    def _hem(self, pred, batch, cache):
        hem, t = pred.get("hemlets"), self.targets(pred, batch, cache)
        if hem is None or t is None:
            return None
        n, c, h, w = hem.shape
        err = (hem.float() - t.hemlets).square().reshape(n, c // 3, 3, h, w)
        return sample_sum_mean(err, t.hemlet_mask[:, :, None, None, None])

    def _heatmap2d(self, pred, batch, cache):
        hm, t = pred.get("heatmaps2d"), self.targets(pred, batch, cache)
        if hm is None or t is None:
            return None
        err = (hm.float() - t.heatmaps).square()
        return sample_sum_mean(err, t.heatmap_mask[:, :, None, None])

    def _joints_vol(self, pred, batch, cache):
        j, t = pred.get("joints_vol"), self.targets(pred, batch, cache)
        if j is None or t is None:
            return None
        return sample_sum_mean((j.float() - t.joints_vol).abs(), t.joints_vol_mask)

    def _rotmats(self, pred, batch, cache):
        key = "rotmats_raw" if self.config.rotmat_source == "raw" else "rotmats"
        r, g = pred.get(key, pred.get("rotmats")), batch.get("rotmats")
        if r is None or g is None:
            return None
        err = torch.linalg.vector_norm((r.float() - g.float()).flatten(-2), dim=-1)  # (N, 24)
        return sample_sum_mean(err, sample_mask(batch.get("has_smpl"), err))

    def _betas(self, pred, batch, cache):
        b, g = pred.get("betas"), batch.get("betas")
        if b is None or g is None:
            return None
        err = (b.float() - g.float()[..., : b.shape[-1]]).abs()
        return sample_sum_mean(err, sample_mask(batch.get("has_smpl"), err))

    # -- hmrt's mesh terms (as DaNet's) ----------------------------------------------------
    def _vertices(self, pred, batch, cache):
        v, g = pred.get("vertices"), self._gt_vertices(batch, cache)
        if v is None or g is None:
            return None
        return smpl.vertex_loss(v, g, batch.get("has_smpl"), "l1")

    def _joints3d(self, pred, batch, cache):
        j, g = pred.get("joints3d"), batch.get("joints3d")
        if j is None or g is None:
            return None
        return keypoints.joints3d_loss(j, g, batch.get("has_3d"), batch.get("joints3d_vis"), "l1")

    def _reproj(self, pred, batch, cache):
        j, cam, j2 = pred.get("joints3d"), pred.get("cam"), batch.get("joints2d")
        if j is None or cam is None or j2 is None:
            return None
        return keypoints.reprojection_loss(j, cam, j2[..., :2], batch.get("joints2d_vis"), "l1")

    def _cam_scale(self, pred, batch, cache):
        cam = pred.get("cam")
        return None if cam is None else smpl.cam_scale_loss(cam, self.config.cam_scale_k)

    # -- total -----------------------------------------------------------------------------
    def forward(
        self, pred: dict, batch: dict, pretrain: bool = False
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Weighted total and the raw (unweighted, detached) value of every computed term.

        ``pretrain`` keeps the pose network's terms only (see the module docstring).
        """
        alpha = self.config.alpha
        weights = {
            name: w * alpha if name in INTERMEDIATE_TERMS else w
            for name, w in self.config.weights.items()
            if not (pretrain and name not in POSE_TERMS)
        }
        return weighted_total(self.terms, weights, pred, batch, self.skipped)
