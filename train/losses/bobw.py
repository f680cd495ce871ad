"""BoBW's objective (paper Eq. 1-9; shared/research/seed-bobw.md §2.1), stage by stage.

The paper trains its modules separately and sums unweighted terms (every weight 1):
``l_DMP = l_Mi + l_Ml + l_Mj + l_Md`` for the DMP, ``l_IK`` for the IK nets (trained alone on
sampled joints: :mod:`hmrt.train.bobw.ik_fit`) and ``l_UVI = l_dismag + l_j2d + l_j3d + l_map +
l_con`` for the UV inpainting. :class:`BoBWCriterion` computes the DMP and UVI terms:

================  =====  ============================================================================
term              stage  definition
================  =====  ============================================================================
``dp_mask``       dmp    ``l_Mib``: BCE of the foreground probability (DecoMR's ``dp_mask``)
``dp_uv``         dmp    ``l_Miuv``: L1 on U, V at GT foreground, per-image foreground mean
``dense_l``       dmp    ``l_Ml``: L1 of ``M_l`` vs the GT location map read at each GT foreground
                         pixel's GT (u, v); per-image foreground mean (metres)
``dense_j``       dmp    ``l_Mj``: the same for the joint map ``M_j`` (GT ``UV_j`` = each texel's
                         LSP joint, by the UV part assignment)
``dense_d``       dmp    ``l_Md``: the same for ``M_d`` (GT ``M_l - M_j``)
``map_l``         uvi    ``l_map``: L1 of ``UV_l`` vs the GT location map, chart texels (Eq. 4)
``map_j``         uvi    ``l_map``: L1 of ``UV_j`` vs the GT joint map
``map_d``         uvi    ``l_map``: L1 of ``UV_d`` vs ``UV_l - UV_j`` of the GT
``joints3d``      uvi    ``l_j3d``: L1 of the 14 per-part means of ``UV_j`` vs the GT LSP joints
``joints2d``      uvi    ``l_j2d``: L1 of those joints through the camera vs the GT 2D joints
                         (13: the head top has no 2D label in hmrt's data), visible ones
``dismag``        uvi    ``l_dismag``: L1 between the displacement length of every vertex and of
                         its mirror vertex (``UV_d`` read at the vertices; Eq. 7, chart-free form)
``consistency``   uvi    ``l_con``: DecoMR's consistency loss on ``UV_l`` with the camera
``vertices``      uvi    hmrt's mesh term (not in the paper; weight 0)
``map_l_parts``   uvi    DecoMR's ``uv_map`` on ``UV_l``: L1 with DecoMR's per-part texel weights
                         (1 : 2 : 5 : 25, torso to hands and feet); not in the paper, weight 0
``mesh_joints3d`` uvi    DecoMR's ``joints3d`` on the final mesh (the body's ``J_regressor``, 24
                         joints); not in the paper, weight 0
``mesh_joints2d`` uvi    DecoMR's ``reproj`` of those joints through the camera; weight 0
================  =====  ============================================================================

The three DecoMR terms supervise the mesh itself, as DecoMR's LNet is trained: the paper's terms
reach the mesh only through the uniform ``map_l`` and ``consistency`` (its joint terms are on
``UV_j``). ``train/configs/bobw_edge_cpu_decomr.yaml`` turns them on for a UVI that starts from
DecoMR-edge's LNet (docs/models/bobw.md gives the measurement behind it).

Ground-truth maps are built here, on the device, from the GT mesh (the batch's ``vertices`` or
the body layer on ``rotmats``/``betas``), root-relative to the body's root joint: ``UV_l`` by
the body's chart raster (DecoMR's ``gt_location_map``), ``UV_j`` by distributing the GT LSP-14
joints over their UV parts. Samples without a label drop out of the terms that need it, as in
:mod:`hmrt.train.losses.decomr`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hmrt.runtime.errors import InputError
from hmrt.train.losses import keypoints
from hmrt.train.losses.config import NORMS, DictConfig
from hmrt.train.losses.decomr import DecoMRCriterion, DecoMRLossConfig, _merge
from hmrt.train.losses.reduce import pointwise, sample_mask, weighted_mean, weighted_total

BOBW_WEIGHTS: dict[str, float] = {
    "dp_mask": 1.0,
    "dp_uv": 1.0,
    "dense_l": 1.0,
    "dense_j": 1.0,
    "dense_d": 1.0,
    "map_l": 1.0,
    "map_j": 1.0,
    "map_d": 1.0,
    "joints3d": 1.0,
    "joints2d": 1.0,
    "dismag": 1.0,
    "consistency": 1.0,
    "vertices": 0.0,
    "map_l_parts": 0.0,
    "mesh_joints3d": 0.0,
    "mesh_joints2d": 0.0,
}
"""The paper's weights: every term 1 (Eq. 1, 8, 9 are unweighted sums); hmrt's extra terms 0."""

BOBW_NORMS: dict[str, str] = {
    "dp_uv": "l1",
    "dense": "l1",
    "map": "l1",
    "joints3d": "l1",
    "joints2d": "l1",
    "consistency": "mse",
    "vertices": "l1",
}

STAGE_TERMS: dict[str, tuple[str, ...]] = {
    "dmp": ("dp_mask", "dp_uv", "dense_l", "dense_j", "dense_d"),
    "uvi": (
        "map_l",
        "map_j",
        "map_d",
        "joints3d",
        "joints2d",
        "dismag",
        "consistency",
        "vertices",
        "map_l_parts",
        "mesh_joints3d",
        "mesh_joints2d",
    ),
}
STAGE_TERMS["all"] = STAGE_TERMS["dmp"] + STAGE_TERMS["uvi"]

# LSP-14 index -> the body joint of the same name (24-joint order) for the 2D labels; the head
# top (13) has none.
LSP_TO_BODY = {
    0: 8,
    1: 5,
    2: 2,
    3: 1,
    4: 4,
    5: 7,
    6: 21,
    7: 19,
    8: 17,
    9: 16,
    10: 18,
    11: 20,
    12: 12,
}


@dataclass
class BoBWLossConfig(DictConfig):
    """Weights (0 switches a term off) and norms of BoBW's terms; unknown names are errors.
    ``stage`` picks the terms: ``dmp``, ``uvi`` or ``all`` (``hmrt train --stage`` sets it)."""

    LABEL: ClassVar[str] = "bobw loss"

    weights: dict[str, float] = field(default_factory=lambda: dict(BOBW_WEIGHTS))
    norms: dict[str, str] = field(default_factory=lambda: dict(BOBW_NORMS))
    stage: str = "all"
    mask_eps: float = 1e-6

    def __post_init__(self) -> None:
        self.weights = _merge(BOBW_WEIGHTS, self.weights, "loss.weights", float)
        self.norms = _merge(BOBW_NORMS, self.norms, "loss.norms", str)
        for name, value in self.norms.items():
            if value not in NORMS:
                raise InputError(f"loss.norms.{name} = '{value}': use one of {', '.join(NORMS)}")
        if self.stage not in STAGE_TERMS:
            raise InputError(f"loss.stage = '{self.stage}': use one of {', '.join(STAGE_TERMS)}")


class BoBWCriterion(DecoMRCriterion):
    """Weighted sum of BoBW's DMP and UVI terms; ``forward(pred, batch, pretrain) -> (total,
    raw_terms)``. Reuses DecoMR's IUV, location-map and consistency terms; ``assign`` is the
    model's ``(14, R, R)`` output part assignment, ``lsp_regressor`` its ``(14, V)`` regressor,
    ``flip_vertex`` the body's mirror map."""

    def __init__(
        self,
        config: BoBWLossConfig | None,
        body: nn.Module | None,
        body_model,
        uv_size: int,
        assign: Tensor,
        lsp_regressor: Tensor,
        sampler: nn.Module,
    ):
        self.bobw = config or BoBWLossConfig()
        super().__init__(DecoMRLossConfig(mask_eps=self.bobw.mask_eps), body, body_model, uv_size)
        self.register_buffer("assign", assign.detach().float().reshape(assign.shape[0], -1))
        self.register_buffer("lsp_regressor", lsp_regressor.detach().float(), persistent=False)
        self.register_buffer(
            "flip_vertex",
            torch.from_numpy(np.array(body_model.flip_vertex, dtype=np.int64)),
            persistent=False,
        )
        self.sampler = sampler
        self.terms = {
            "dp_mask": self._dp_mask,
            "dp_uv": self._dp_uv,
            "dense_l": lambda p, b, c: self._dense(p, b, c, 0),
            "dense_j": lambda p, b, c: self._dense(p, b, c, 1),
            "dense_d": lambda p, b, c: self._dense(p, b, c, 2),
            "map_l": lambda p, b, c: self._map(p, b, c, 0),
            "map_j": lambda p, b, c: self._map(p, b, c, 1),
            "map_d": lambda p, b, c: self._map(p, b, c, 2),
            "joints3d": self._joints3d_lsp,
            "joints2d": self._joints2d_lsp,
            "dismag": self._dismag,
            "consistency": self._consistency_uvi,
            "vertices": self._vertices,
            "map_l_parts": self._map_l_parts,
            "mesh_joints3d": self._joints3d,  # DecoMR's: J_regressor on the final mesh
            "mesh_joints2d": self._reproj,
        }

    @classmethod
    def for_model(cls, model: nn.Module, config: BoBWLossConfig | None = None) -> BoBWCriterion:
        """The criterion of a built BoBW model (its body file, part assignment and sampler)."""
        from hmrt.runtime.body.model import BodyModel
        from hmrt.train.body import BodyLayer

        body_model = BodyModel(getattr(model, "body_path", None))
        if getattr(model, "body_hash", body_model.hash) != body_model.hash:
            raise InputError(
                f"bobw loss: body file {body_model.path} is not the one the model was built with"
            )
        if isinstance(config, dict):
            config = BoBWLossConfig.from_dict(config)
        return cls(
            config,
            BodyLayer(body_model),
            body_model,
            model.config.uv_res,
            model.parts_out.assign_t.t().contiguous(),
            model.lsp_regressor,
            model.sampler,
        )

    # -- ground truth ----------------------------------------------------------------------
    def gt_maps(self, batch: dict, cache: dict) -> Tensor | None:
        """GT ``[UV_l, UV_j, UV_d]`` ``(N, 9, R, R)`` (0 off the chart) and LSP joints (cached)."""
        if "maps" in cache:
            return cache["maps"]
        verts = self.gt_vertices(batch, cache)
        maps = None
        if verts is not None:
            n, r = verts.shape[0], self.uv_size
            loc = self.gt_location_map(verts)
            joints = torch.matmul(self.lsp_regressor, verts)  # (N, 14, 3), root-relative
            jmap = torch.matmul(joints.transpose(1, 2), self.assign).reshape(n, 3, r, r)
            maps = torch.cat([loc, jmap, (loc - jmap) * self.coverage], dim=1)
            cache["lsp"] = joints
        cache["maps"] = maps
        return maps

    def _read_at_gt_uv(self, maps: Tensor, uv: Tensor) -> Tensor:
        """``maps (N,C,R,R)`` read at every pixel's GT ``uv (N,2,h,w)`` (chart texels only,
        bilinear weights renormalised, as the model's read-out and DecoMR's consistency)."""
        n = maps.shape[0]
        grid = torch.stack([uv[:, 0] * 2.0 - 1.0, 1.0 - uv[:, 1] * 2.0], dim=-1)
        cover = self.coverage.expand(n, -1, -1, -1)
        both = torch.cat([maps * cover, cover], dim=1)
        read = F.grid_sample(both, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return read[:, :-1] / read[:, -1:].clamp(min=1e-6)

    # -- DMP terms -------------------------------------------------------------------------
    def _dense(self, pred, batch, cache, which: int):
        dense, gt_iuv = pred.get("dense_maps"), self._gt_iuv(pred, batch)
        maps = self.gt_maps(batch, cache)
        if dense is None or gt_iuv is None or maps is None:
            return None
        fg, uv = gt_iuv
        if "dense_gt" not in cache:
            cache["dense_gt"] = self._read_at_gt_uv(maps, uv)
        gt = cache["dense_gt"][:, 3 * which : 3 * which + 3]
        got = dense[:, 3 * which : 3 * which + 3].float()
        err = pointwise(got, gt, self.bobw.norms["dense"]).mean(dim=1)
        per_image = (err * fg).sum(dim=(1, 2)) / fg.sum(dim=(1, 2)).clamp(min=1.0)
        has = (fg.sum(dim=(1, 2)) > 0).float()
        has = (
            has
            * sample_mask(batch.get("has_iuv"), per_image)
            * sample_mask(batch.get("has_smpl"), per_image)
        )
        return weighted_mean(per_image, has)

    # -- UVI terms -------------------------------------------------------------------------
    def _map(self, pred, batch, cache, which: int):
        uv_maps, maps = pred.get("uv_maps"), self.gt_maps(batch, cache)
        if uv_maps is None or maps is None:
            return None
        got = uv_maps[:, 3 * which : 3 * which + 3].float() * self.coverage
        gt = maps[:, 3 * which : 3 * which + 3]
        err = pointwise(got, gt, self.bobw.norms["map"]) * self.coverage
        # mean over the chart texels (off-chart texels carry no label)
        per_image = err.sum(dim=(1, 2, 3)) / (3.0 * self.coverage.sum())
        return weighted_mean(per_image, sample_mask(batch.get("has_smpl"), per_image))

    def _joints3d_lsp(self, pred, batch, cache):
        joints, maps = pred.get("j_final"), self.gt_maps(batch, cache)
        if joints is None or maps is None:
            return None
        err = pointwise(joints.float(), cache["lsp"], self.bobw.norms["joints3d"])
        return weighted_mean(err, sample_mask(batch.get("has_smpl"), err))

    def _joints2d_lsp(self, pred, batch, cache):
        joints, cam, j2 = pred.get("j_final"), pred.get("cam"), batch.get("joints2d")
        raw, verts = pred.get("vertices_raw"), pred.get("vertices")
        if joints is None or cam is None or j2 is None or raw is None or verts is None:
            return None
        root = (raw[:, :1] - verts[:, :1]).float()
        lsp = list(LSP_TO_BODY)
        proj = keypoints.weak_perspective(joints[:, lsp].float() - root, cam.float())
        body = list(LSP_TO_BODY.values())
        vis = batch.get("joints2d_vis")
        return keypoints.joints2d_loss(
            proj,
            j2[:, body, :2],
            None if vis is None else vis[:, body],
            self.bobw.norms["joints2d"],
        )

    def _dismag(self, pred, batch, cache):
        uv_maps = pred.get("uv_maps")
        if uv_maps is None:
            return None
        length = self.sampler(uv_maps[:, 6:9].float()).norm(dim=-1)  # (N, V)
        return (length - length[:, self.flip_vertex]).abs().mean()

    def _map_l_parts(self, pred, batch, cache):
        uv_maps = pred.get("uv_maps")
        if uv_maps is None:
            return None
        return self._uv_map(dict(pred, location_map=uv_maps[:, 0:3]), batch, cache)

    def _consistency_uvi(self, pred, batch, cache):
        uv_maps = pred.get("uv_maps")
        if uv_maps is None:
            return None
        view = dict(pred, location_map=uv_maps[:, 0:3])
        return self._consistency(view, batch, cache)

    # -- total -----------------------------------------------------------------------------
    def forward(
        self, pred: dict, batch: dict, pretrain: bool = False
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Weighted total and the raw value of every computed term of the config's stage
        (``pretrain`` means the DMP stage, as DecoMR's IUV warm-up)."""
        stage = "dmp" if pretrain else self.bobw.stage
        keep = STAGE_TERMS[stage]
        weights = {k: w for k, w in self.bobw.weights.items() if k in keep}
        return weighted_total(self.terms, weights, pred, batch, self.skipped)
