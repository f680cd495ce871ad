"""DaNet's full objective ``L = L_inter + L_target + L_refine`` (paper Eq. 1, 3, 4).

:class:`DanetCriterion` reads the model's training outputs and a batch of labels, computes every
term whose inputs are present and whose weight is non-zero, and returns the weighted total plus
each raw (unweighted) term for logging. Terms that need a label the batch lacks for some samples
use the ``has_smpl`` / ``has_3d`` / ``has_iuv`` masks, so mixed datasets train correctly.

Key names (model outputs, see the DaNet module docstring; batch, see ``hmrt.train.data``) are
collected in :data:`PRED_KEYS` and :data:`BATCH_KEYS` so other models with the same intermediates
can reuse the criterion.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
from torch import nn

from hmrt.train.losses import iuv, keypoints, smpl
from hmrt.train.losses.config import PRETRAIN_TERMS, LossConfig
from hmrt.train.losses.reduce import weighted_total
from hmrt.train.models.danet.tables import ANN_GROUPS

Tensor = torch.Tensor

PRED_KEYS = {
    "iuv_index": "iuv_index",  # (N,25,h,w) part logits
    "iuv_u": "iuv_u",  # (N,25,h,w)
    "iuv_v": "iuv_v",  # (N,25,h,w)
    "iuv_ann": "iuv_ann",  # (N,15,h,w) coarse segmentation logits
    "part_index": "part_index",  # (N,24,7,h,w) partial part logits
    "part_u": "part_u",  # (N,24,7,h,w)
    "part_v": "part_v",  # (N,24,7,h,w)
    "roi_theta": "roi_theta",  # (N,24,2,3) affine RoI per joint
    "roi_centres": "roi_centres",  # (N,24,2) soft-argmax joints in [-1,1]
    "heatmaps": "heatmaps",  # (N,24,h,w)
    "rotmats": "rotmats",
    "betas": "betas",
    "vertices": "vertices",
    "joints3d": "joints3d",
    "cam": "cam",
    "refine_rotmats": "refine_rotmats",  # list of (N,24,3,3): rotations from X (pre-refinement)
    "refine_positions": "refine_positions",  # list of (N,24,3): positions from Y and Y-hat
}

BATCH_KEYS = {
    "iuv_index": "iuv_index",  # (N,h,w) int, 0 = background
    "iuv_u": "iuv_u",  # (N,h,w) float in [0,1]
    "iuv_v": "iuv_v",
    "joints2d": "joints2d",  # (N,24,2) normalised crop coordinates
    "joints2d_vis": "joints2d_vis",  # (N,24) visibility / confidence
    "joints3d": "joints3d",  # (N,24,3) root-relative metres
    "joints3d_vis": "joints3d_vis",  # (N,24) per-joint 3D confidence
    "rotmats": "rotmats",  # (N,24,3,3)
    "betas": "betas",  # (N,10)
    "vertices": "vertices",  # optional (N,V,3); computed from rotmats/betas when absent
    "has_smpl": "has_smpl",
    "has_3d": "has_3d",
    "has_iuv": "has_iuv",
}


def _as_list(x) -> list[Tensor]:
    if x is None:
        return []
    return list(x) if isinstance(x, (list, tuple)) else [x]


class DanetCriterion(nn.Module):
    """Weighted sum of DaNet's loss terms; ``forward(pred, batch) -> (total, raw_terms)``.

    ``body`` (a ``hmrt.train.body.BodyLayer``) builds ground-truth vertices from the labelled
    rotations and shape when the batch carries none. ``part_table`` ``(24, P)`` lists the
    DensePose parts of each joint's partial IUV map (the model's table), and ``align_corners``
    must match the model's RoI pooling, so partial targets are warped exactly like the features.
    """

    def __init__(
        self,
        config: LossConfig | None = None,
        body: nn.Module | None = None,
        part_table: Tensor | None = None,
        align_corners: bool = True,
        pred_keys: dict[str, str] | None = None,
        batch_keys: dict[str, str] | None = None,
    ):
        super().__init__()
        self.config = config or LossConfig()
        self.body = body
        self.align_corners = align_corners
        self.pk = {**PRED_KEYS, **(pred_keys or {})}
        self.bk = {**BATCH_KEYS, **(batch_keys or {})}
        if part_table is not None:
            self.register_buffer("part_table", torch.as_tensor(part_table).long(), persistent=False)
        else:
            self.part_table = None
        self.terms: dict[str, Callable[[dict, dict, dict], Tensor | None]] = {
            "iuv_index": self._iuv_index,
            "iuv_ann": self._iuv_ann,
            "iuv_uv": self._iuv_uv,
            "part_iuv_index": self._part_index,
            "part_iuv_uv": self._part_uv,
            "joints2d_roi": self._joints2d_roi,
            "heatmap": self._heatmap,
            "smpl_pose": self._smpl_pose,
            "smpl_betas": self._smpl_betas,
            "orth": self._orth,
            "vertices": self._vertices,
            "joints3d": self._joints3d,
            "reproj": self._reproj,
            "cam_scale": self._cam_scale,
            "refine_rot": self._refine_rot,
            "refine_pos": self._refine_pos,
        }
        self.skipped: set[str] = set()  # enabled terms whose inputs were missing (for a warning)
        lut = torch.zeros(25, dtype=torch.long)
        for group, parts in enumerate(ANN_GROUPS):
            lut[list(parts)] = group
        self.register_buffer("ann_lut", lut, persistent=False)

    @classmethod
    def for_model(cls, model: nn.Module, config: LossConfig | None = None) -> DanetCriterion:
        """The criterion matching a built model: its body layer and partial-part table."""
        head = getattr(model, "body", None)
        body = getattr(head, "layer", head)
        table = getattr(model, "part_table", None)
        config = config or LossConfig()
        temperature = getattr(getattr(model, "config", None), "hm_temperature", None)
        if temperature is not None:  # heatmap targets must match the model's soft-argmax
            config = dataclasses.replace(config, heatmap_temperature=float(temperature))
        return cls(config, body=body, part_table=table, align_corners=True)

    # -- helpers ---------------------------------------------------------------------------
    def _p(self, pred: dict, name: str):
        return pred.get(self.pk[name])

    def _b(self, batch: dict, name: str):
        return batch.get(self.bk[name])

    def _norm(self, term: str) -> str:
        return self.config.norms[term]

    def _gt_vertices(self, batch: dict, cache: dict) -> Tensor | None:
        """Root-relative ground-truth vertices, from the batch or the body layer (cached per call)."""
        b = self._b
        return smpl.gt_vertices(
            self.body, b(batch, "vertices"), b(batch, "rotmats"), b(batch, "betas"), cache
        )

    # -- intermediate terms ------------------------------------------------------------------
    def _iuv_index(self, pred, batch, cache):
        logits, index = self._p(pred, "iuv_index"), self._b(batch, "iuv_index")
        if logits is None or index is None:
            return None
        return iuv.index_loss(logits, index, self._b(batch, "has_iuv"), self.config.iuv_fg_weight)

    def _iuv_ann(self, pred, batch, cache):
        logits, index = self._p(pred, "iuv_ann"), self._b(batch, "iuv_index")
        if logits is None or index is None:
            return None
        coarse = self.ann_lut.to(index.device)[index.long()]
        return iuv.index_loss(logits, coarse, self._b(batch, "has_iuv"), self.config.iuv_fg_weight)

    def _iuv_uv(self, pred, batch, cache):
        u, v = self._p(pred, "iuv_u"), self._p(pred, "iuv_v")
        index = self._b(batch, "iuv_index")
        ug, vg = self._b(batch, "iuv_u"), self._b(batch, "iuv_v")
        if any(x is None for x in (u, v, index, ug, vg)):
            return None
        return iuv.uv_loss(u, v, index, ug, vg, self._b(batch, "has_iuv"), self._norm("iuv_uv"))

    def _partial_targets(self, pred, batch, cache):
        if "partial" in cache:
            return cache["partial"]
        theta, logits = self._p(pred, "roi_theta"), self._p(pred, "part_index")
        index = self._b(batch, "iuv_index")
        ug, vg = self._b(batch, "iuv_u"), self._b(batch, "iuv_v")
        out = None
        if self.part_table is not None and not any(
            x is None for x in (theta, logits, index, ug, vg)
        ):
            out = iuv.partial_iuv_targets(
                index, ug, vg, theta, self.part_table, tuple(logits.shape[-2:]), self.align_corners
            )
        cache["partial"] = out
        return out

    def _part_index(self, pred, batch, cache):
        targets = self._partial_targets(pred, batch, cache)
        if targets is None:
            return None
        return iuv.partial_index_loss(
            self._p(pred, "part_index"),
            targets[0],
            self._b(batch, "has_iuv"),
            self.config.iuv_fg_weight,
        )

    def _part_uv(self, pred, batch, cache):
        targets = self._partial_targets(pred, batch, cache)
        u, v = self._p(pred, "part_u"), self._p(pred, "part_v")
        if targets is None or u is None or v is None:
            return None
        return iuv.partial_uv_loss(
            u, v, *targets, self._b(batch, "has_iuv"), self._norm("part_iuv_uv")
        )

    def _joints2d_roi(self, pred, batch, cache):
        c, j = self._p(pred, "roi_centres"), self._b(batch, "joints2d")
        if c is None or j is None:
            return None
        return keypoints.joints2d_loss(
            c, j[..., :2], self._b(batch, "joints2d_vis"), self._norm("joints2d_roi")
        )

    def _heatmap(self, pred, batch, cache):
        hm, j = self._p(pred, "heatmaps"), self._b(batch, "joints2d")
        if hm is None or j is None:
            return None
        return keypoints.heatmap_loss(
            hm,
            j[..., :2],
            self._b(batch, "joints2d_vis"),
            self.config.heatmap_sigma,
            self._norm("heatmap"),
            self.config.heatmap_pixel_offset,
            self.config.heatmap_temperature,
        )

    # -- target terms ------------------------------------------------------------------------
    def _smpl_pose(self, pred, batch, cache):
        r, g = self._p(pred, "rotmats"), self._b(batch, "rotmats")
        if r is None or g is None:
            return None
        return smpl.rotmat_loss(r, g, self._b(batch, "has_smpl"), self._norm("smpl_pose"))

    def _smpl_betas(self, pred, batch, cache):
        b, g = self._p(pred, "betas"), self._b(batch, "betas")
        if b is None or g is None:
            return None
        return smpl.betas_loss(b, g, self._b(batch, "has_smpl"), self._norm("smpl_betas"))

    def _orth(self, pred, batch, cache):
        mats = [
            m
            for m in [self._p(pred, "rotmats"), *_as_list(self._p(pred, "refine_rotmats"))]
            if m is not None
        ]
        if not mats:
            return None
        return sum(smpl.orthogonality_loss(m) for m in mats) / len(mats)

    def _vertices(self, pred, batch, cache):
        v, g = self._p(pred, "vertices"), self._gt_vertices(batch, cache)
        if v is None or g is None:
            return None
        return smpl.vertex_loss(v, g, self._b(batch, "has_smpl"), self._norm("vertices"))

    def _joints3d(self, pred, batch, cache):
        j, g = self._p(pred, "joints3d"), self._b(batch, "joints3d")
        if j is None or g is None:
            return None
        conf = self._b(batch, "joints3d_vis")
        return keypoints.joints3d_loss(j, g, self._b(batch, "has_3d"), conf, self._norm("joints3d"))

    def _reproj(self, pred, batch, cache):
        j, cam, j2 = self._p(pred, "joints3d"), self._p(pred, "cam"), self._b(batch, "joints2d")
        if j is None or cam is None or j2 is None:
            return None
        return keypoints.reprojection_loss(
            j, cam, j2[..., :2], self._b(batch, "joints2d_vis"), self._norm("reproj")
        )

    def _cam_scale(self, pred, batch, cache):
        cam = self._p(pred, "cam")
        return None if cam is None else smpl.cam_scale_loss(cam, self.config.cam_scale_k)

    # -- refinement terms ----------------------------------------------------------------------
    def _refine_rot(self, pred, batch, cache):
        mats, g = _as_list(self._p(pred, "refine_rotmats")), self._b(batch, "rotmats")
        if not mats or g is None:
            return None
        mask, norm = self._b(batch, "has_smpl"), self._norm("refine_rot")
        return sum(smpl.rotmat_loss(m, g, mask, norm) for m in mats) / len(mats)

    def _refine_pos(self, pred, batch, cache):
        pos, g = _as_list(self._p(pred, "refine_positions")), self._b(batch, "joints3d")
        if not pos or g is None:
            return None
        g = keypoints.root_relative(g.float())
        mask, norm = self._b(batch, "has_3d"), self._norm("refine_pos")
        return sum(keypoints.position_loss(p, g, mask, norm) for p in pos) / len(pos)

    # -- total ---------------------------------------------------------------------------------
    def forward(
        self, pred: dict, batch: dict, pretrain: bool = False
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Weighted total and the raw value of every computed term (detached, for logging).

        ``pretrain`` keeps only the IUV-estimator terms (DaNet's IUV-only warm-up phase).
        """
        scale = self.config.target_scale
        weights = {
            name: w if name in PRETRAIN_TERMS else w * scale
            for name, w in self.config.weights.items()
            if not (pretrain and name not in PRETRAIN_TERMS)
        }
        return weighted_total(self.terms, weights, pred, batch, self.skipped)
