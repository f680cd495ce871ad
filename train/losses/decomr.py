"""DecoMR's objective as the official code trains it (shared/research/seed-decomr.md §2.2).

Paper (Eq. 1, 4, 9): ``L = L_IUV + L_Loc + lambda_con L_con`` with ``L_IUV = 0.2 BCE(mask) +
L1(UV)`` and ``L_Loc = L_map + L_J3D + L_J2D``. The official trainer adds a total-variation
term on the location map and computes every term as a mean; :class:`DecoMRCriterion` follows
the code, term by term:

================  =======  ========================================================================
term              weight   definition (official name)
================  =======  ========================================================================
``dp_mask``       0.2      BCE of the predicted foreground probability vs the GT mask (``dp_mask``)
``dp_uv``         1        L1 on U, V at GT foreground pixels, per-image foreground mean
                           (``dp_uv``: weights ``mask / foreground fraction``, then a mean)
``uv_map``        1        ``L1(W X, W X_gt)`` over the location map; ``W`` = part weights
                           torso 1 : head 2 : arms, legs 5 : hands, feet 25, mean 1 (``uv``)
``tv``            0.0128   total variation of ``X``: sum of abs neighbour differences / (R-1)^2
                           (``tv``; official 1e-4 summed over a batch of 128: here per sample)
``joints3d``      1        root-relative 3D joints, L1, per-joint confidence (``key3D``)
``reproj``        1        3D joints through the predicted camera vs GT 2D joints, MSE, visible
                           joints only (``key2D``)
``consistency``   1        ``X`` read at each GT foreground pixel's GT (u, v), projected with the
                           predicted camera, vs that pixel's position, MSE (``con``, Eq. 10)
``vertices``      0        root-relative vertices, L1 (``mesh``; official weight 0)
================  =======  ========================================================================

The ground-truth location map ``X_gt`` is rendered here, on the device, from the ground-truth
vertices (the batch's ``vertices`` or the body layer's mesh of ``rotmats``/``betas``) with the
body's UV raster (:func:`hmrt.runtime.render.uv_raster`, the tables behind the model's reference
map and sampler): texel ``(r, c)`` of an ``R x R`` map holds the surface point at the texel centre
``u = (c + 0.5)/R, v = 1 - (r + 0.5)/R``, i.e. the model's UV orientation (``u`` to the subject's
left, head on top; ``hmrt.train.models.layers.uv_scatter``). Both maps live in the frame the
model's vertices are reported in: the mesh's root joint (``J_regressor[0] @ vertices``) at the
origin. Texels off the chart have ``W = 0`` in ``uv_map``.

Samples without a label drop out of the terms that need it (``has_iuv``: ``dp_*`` and
``consistency``; ``has_smpl``: ``uv_map``, ``vertices``; ``has_3d`` + ``joints3d_vis``:
``joints3d``; ``joints2d_vis``: ``reproj``), so SPIN-style npz data (no dense labels) and the
synthetic engine mix. ``pretrain=True`` keeps only the IUV terms (the official ``dp`` stage,
CNet alone). Where hmrt deviates from the official code, and why: docs/models/decomr.md.
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
from hmrt.train.losses.iuv import _resize_labels, _resize_values
from hmrt.train.losses.reduce import pointwise, sample_mask, weighted_mean, weighted_total

DECOMR_WEIGHTS: dict[str, float] = {
    "dp_mask": 0.2,  # official lam_dp_mask (paper lambda_c)
    "dp_uv": 1.0,  # lam_dp_uv (paper lambda_r)
    "uv_map": 1.0,  # lam_uv
    # lam_tv 1e-4 on a sum over the batch (official batch 128); hmrt averages over the batch.
    "tv": 1e-4 * 128,
    "joints3d": 1.0,  # lam_key3d
    "reproj": 1.0,  # lam_key2d
    "consistency": 1.0,  # lam_con
    "vertices": 0.0,  # lam_mesh (off in the released config)
}

DECOMR_NORMS: dict[str, str] = {
    "dp_uv": "l1",
    "uv_map": "l1",
    "joints3d": "l1",
    "reproj": "mse",
    "consistency": "mse",
    "vertices": "l1",
}

DECOMR_PRETRAIN_TERMS = ("dp_mask", "dp_uv")
"""Terms of the official ``dp`` stage (CNet alone, IUV losses only)."""

PART_GROUP_WEIGHTS: dict[str, float] = {
    "torso": 1.0,
    "head": 2.0,
    "limbs": 5.0,
    "extremities": 25.0,
}
"""Supplementary material: lambda_t : lambda_n&h : lambda_a&l : lambda_h&f = 1 : 2 : 5 : 25."""

# DensePose part (1..24) -> group of PART_GROUP_WEIGHTS. 1, 2 torso; 3, 4 hands; 5, 6 feet;
# 7-14 upper/lower legs; 15-22 upper/lower arms; 23, 24 head (DensePose has no neck part: the
# official SMPL segmentation's neck weight 2 falls to the head here).
DP_PART_GROUP = ["torso"] * 3 + ["extremities"] * 4 + ["limbs"] * 16 + ["head"] * 2


@dataclass
class DecoMRLossConfig(DictConfig):
    """Weights (0 switches a term off) and norms of DecoMR's terms; unknown names are errors.

    ``part_weights`` overrides the 1 : 2 : 5 : 25 location-map weights per group (``torso``,
    ``head``, ``limbs``, ``extremities``). ``mask_eps`` clamps the probability in the BCE.
    """

    LABEL: ClassVar[str] = "decomr loss"

    weights: dict[str, float] = field(default_factory=lambda: dict(DECOMR_WEIGHTS))
    norms: dict[str, str] = field(default_factory=lambda: dict(DECOMR_NORMS))
    part_weights: dict[str, float] = field(default_factory=lambda: dict(PART_GROUP_WEIGHTS))
    mask_eps: float = 1e-6

    def __post_init__(self) -> None:
        self.weights = _merge(DECOMR_WEIGHTS, self.weights, "loss.weights", float)
        self.norms = _merge(DECOMR_NORMS, self.norms, "loss.norms", str)
        self.part_weights = _merge(
            PART_GROUP_WEIGHTS, self.part_weights, "loss.part_weights", float
        )
        for name, value in self.norms.items():
            if value not in NORMS:
                raise InputError(f"loss.norms.{name} = '{value}': use one of {', '.join(NORMS)}")


def _merge(defaults: dict, given: dict, where: str, kind) -> dict:
    out = dict(defaults)
    for name, value in (given or {}).items():
        if name not in defaults:
            raise InputError(f"unknown name '{name}' in {where}; known: {', '.join(defaults)}")
        out[name] = kind(value)
    return out


def location_map_table(body, uv_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per texel of an ``uv_size`` map: vertex indices ``(S*S, 3)``, barycentrics ``(S*S, 3)``
    (0 off the chart) and the covering face's DensePose part ``(S*S,)`` (0 off the chart).

    From the body's continuous chart (``cont_vt``/``cont_ft``) rasterised by
    :func:`hmrt.runtime.render.uv_raster`: ``sum_k bary[:, k] * V[index[:, k]]`` is exactly
    :func:`hmrt.runtime.render.location_map` of the vertices ``V``, as a gather that runs on the
    training device in the loss. Built by
    :func:`hmrt.train.models.layers.mesh_to_uv.mesh_to_uv_table` (shared with BoBW's layers).
    """
    from hmrt.train.models.layers.mesh_to_uv import mesh_to_uv_table

    table = mesh_to_uv_table(body, uv_size)  # cached, read-only: hand out writable copies
    return table.index.copy(), table.bary.copy(), table.part.copy()


def uv_weight_map(
    part: np.ndarray, cover: np.ndarray, groups: dict[str, float], uv_size: int
) -> np.ndarray:
    """Official ``cal_uv_weight`` on hmrt's chart: ``(S, S)`` float32, 0 off the chart.

    ``part`` (S*S,) DensePose part of each texel's face, ``cover`` (S*S,) texels on the chart.
    Texel weight = its part group's weight, 0 off the chart, normalised to mean 1 over the map
    (the official map is normalised, masked by the chart and normalised again: the same thing
    when the mask is already applied), so ``mean(|W X - W X_gt|)`` over the map is the loss.
    Texels without a DensePose part (a body file without ``dp_I``) get the torso weight.
    """
    lut = np.array([0.0] + [groups[g] for g in DP_PART_GROUP[1:]], dtype=np.float64)
    cover = np.asarray(cover, dtype=bool)
    w = np.where(part > 0, lut[np.clip(part, 0, 24)], groups["torso"]) * cover
    if not (w > 0).any():
        return cover.reshape(uv_size, uv_size).astype(np.float32)
    return (w / w.mean()).reshape(uv_size, uv_size).astype(np.float32)


class DecoMRCriterion(nn.Module):
    """Weighted sum of DecoMR's terms; ``forward(pred, batch, pretrain) -> (total, raw_terms)``.

    ``body`` (a ``hmrt.train.body.BodyLayer``) poses the ground-truth mesh from ``rotmats`` /
    ``betas`` when the batch carries no ``vertices``; ``J_regressor`` (24, V) puts it in the
    model's root frame; the location-map table and weights come from :func:`location_map_table`.
    Use :meth:`for_model` to get all of them from a built model's body file.
    """

    def __init__(
        self,
        config: DecoMRLossConfig | None,
        body: nn.Module | None,
        body_model,
        uv_size: int = 128,
    ):
        super().__init__()
        self.config = config or DecoMRLossConfig()
        self.body = body
        self.uv_size = int(uv_size)
        index, bary, part = location_map_table(body_model, self.uv_size)
        cover = bary.sum(axis=1) > 0  # texels on the chart
        weight = uv_weight_map(part, cover, self.config.part_weights, self.uv_size)
        reg = np.asarray(body_model.J_regressor, dtype=np.float32)
        self.register_buffer("map_index", torch.from_numpy(index), persistent=False)
        self.register_buffer("map_bary", torch.from_numpy(bary), persistent=False)
        self.register_buffer("map_weight", torch.from_numpy(weight)[None, None], persistent=False)
        cover_t = torch.from_numpy(cover.astype(np.float32)).reshape(1, 1, uv_size, uv_size)
        self.register_buffer("coverage", cover_t, persistent=False)
        self.register_buffer("root_regressor", torch.from_numpy(reg[:1].copy()), persistent=False)
        self.terms = {
            "dp_mask": self._dp_mask,
            "dp_uv": self._dp_uv,
            "uv_map": self._uv_map,
            "tv": self._tv,
            "joints3d": self._joints3d,
            "reproj": self._reproj,
            "consistency": self._consistency,
            "vertices": self._vertices,
        }
        self.skipped: set[str] = set()

    @classmethod
    def for_model(cls, model: nn.Module, config: DecoMRLossConfig | None = None) -> DecoMRCriterion:
        """The criterion for a built DecoMR model: its body file, location-map size and a body
        layer for the ground-truth meshes."""
        from hmrt.runtime.body.model import BodyModel
        from hmrt.train.body import BodyLayer

        path = getattr(model, "body_path", None)
        body_model = BodyModel(path)
        if getattr(model, "body_hash", body_model.hash) != body_model.hash:
            raise InputError(
                f"decomr loss: body file {body_model.path} is not the one the model was built with"
            )
        if isinstance(config, dict):
            config = DecoMRLossConfig.from_dict(config)
        return cls(config, BodyLayer(body_model), body_model, model.config.uv_res)

    # -- ground truth ----------------------------------------------------------------------
    def gt_vertices(self, batch: dict, cache: dict) -> Tensor | None:
        """Ground-truth vertices ``(N, V, 3)`` with the mesh root joint at the origin (cached)."""
        if "vertices" in cache:
            return cache["vertices"]
        verts = batch.get("vertices")
        if verts is None and self.body is not None:
            rot, betas = batch.get("rotmats"), batch.get("betas")
            if rot is not None and betas is not None:
                with torch.no_grad():
                    out = self.body(rot.float(), betas.float())
                    verts = out["vertices"] if isinstance(out, dict) else out[0]
        if verts is not None:
            verts = verts.float()
            root = torch.matmul(self.root_regressor, verts)  # (N, 1, 3)
            verts = verts - root
        cache["vertices"] = verts
        return verts

    def gt_location_map(self, vertices: Tensor) -> Tensor:
        """Location map ``(N, 3, R, R)`` of ``vertices (N, V, 3)`` in the model's UV layout."""
        n, r = vertices.shape[0], self.uv_size
        picked = vertices.index_select(1, self.map_index.reshape(-1)).reshape(n, r * r, 3, 3)
        loc = (picked * self.map_bary[None, :, :, None]).sum(dim=2)  # (N, R*R, 3)
        return loc.transpose(1, 2).reshape(n, 3, r, r)

    def _gt_iuv(self, pred: dict, batch: dict) -> tuple[Tensor, Tensor] | None:
        """GT foreground ``(N, h, w)`` and continuous UV ``(N, 2, h, w)`` at the IUV's size."""
        iuv, index, cont = pred.get("iuv"), batch.get("iuv_index"), batch.get("cont_uv")
        if iuv is None or index is None or cont is None:
            return None
        size = tuple(iuv.shape[-2:])
        fg = (_resize_labels(index, size) > 0).float()
        uv = torch.stack([_resize_values(cont[:, c], size) for c in range(2)], dim=1)
        return fg, uv.float()

    # -- terms -----------------------------------------------------------------------------
    def _dp_mask(self, pred, batch, cache):
        gt = self._gt_iuv(pred, batch)
        if gt is None:
            return None
        p = pred["iuv"][:, 0].float().clamp(self.config.mask_eps, 1.0 - self.config.mask_eps)
        fg = gt[0]
        bce = -(fg * torch.log(p) + (1.0 - fg) * torch.log1p(-p))
        return weighted_mean(bce, sample_mask(batch.get("has_iuv"), bce))

    def _dp_uv(self, pred, batch, cache):
        gt = self._gt_iuv(pred, batch)
        if gt is None:
            return None
        fg, uv = gt
        err = pointwise(pred["iuv"][:, 1:].float(), uv, self.config.norms["dp_uv"]).mean(dim=1)
        # Official: w = fg / (foreground fraction) then a mean = each image's foreground mean.
        per_image = (err * fg).sum(dim=(1, 2)) / fg.sum(dim=(1, 2)).clamp(min=1.0)
        has = (fg.sum(dim=(1, 2)) > 0).float() * sample_mask(batch.get("has_iuv"), per_image)
        return weighted_mean(per_image, has)

    def _uv_map(self, pred, batch, cache):
        loc, verts = pred.get("location_map"), self.gt_vertices(batch, cache)
        if loc is None or verts is None:
            return None
        gt = self.gt_location_map(verts)
        err = pointwise(
            loc.float() * self.map_weight, gt * self.map_weight, self.config.norms["uv_map"]
        )
        return weighted_mean(err, sample_mask(batch.get("has_smpl"), err))

    def _tv(self, pred, batch, cache):
        loc = pred.get("location_map")
        if loc is None:
            return None
        loc = loc.float()
        dx = (loc[..., :, 1:] - loc[..., :, :-1]).abs().sum(dim=(1, 2, 3))
        dy = (loc[..., 1:, :] - loc[..., :-1, :]).abs().sum(dim=(1, 2, 3))
        return ((dx + dy) / float((self.uv_size - 1) ** 2)).mean()

    def _joints3d(self, pred, batch, cache):
        j, g = pred.get("joints3d"), batch.get("joints3d")
        if j is None or g is None:
            return None
        return keypoints.joints3d_loss(
            j, g, batch.get("has_3d"), batch.get("joints3d_vis"), self.config.norms["joints3d"]
        )

    def _reproj(self, pred, batch, cache):
        j, cam, j2 = pred.get("joints3d"), pred.get("cam"), batch.get("joints2d")
        if j is None or cam is None or j2 is None:
            return None
        return keypoints.reprojection_loss(
            j, cam, j2[..., :2], batch.get("joints2d_vis"), self.config.norms["reproj"]
        )

    def _consistency(self, pred, batch, cache):
        loc, cam = pred.get("location_map"), pred.get("cam")
        raw, verts = pred.get("vertices_raw"), pred.get("vertices")
        gt = self._gt_iuv(pred, batch)
        if loc is None or cam is None or raw is None or verts is None or gt is None:
            return None
        fg, uv = gt
        n, h, w = fg.shape
        # Read X at each pixel's GT (u, v): grid x = 2u - 1, y = 1 - 2v (row <-> 1 - v), the
        # texel-centre convention of the map; off-chart texels are left out and the remaining
        # bilinear weights renormalised, as the model's own vertex read-out does.
        grid = torch.stack([uv[:, 0] * 2.0 - 1.0, 1.0 - uv[:, 1] * 2.0], dim=-1)
        cover = self.coverage.expand(n, -1, -1, -1)
        both = torch.cat([loc.float() * cover, cover], dim=1)
        read = F.grid_sample(both, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        points = read[:, :3] / read[:, 3:].clamp(min=1e-6)  # (N, 3, h, w)
        root = (raw[:, 0] - verts[:, 0]).float()  # the model's root joint, same for every vertex
        points = points - root[:, :, None, None]
        s, t = cam[:, 0].float()[:, None, None, None], cam[:, 1:3].float()[:, :, None, None]
        proj = s * (points[:, :2] + t)  # (N, 2, h, w), [-1, 1] crop coordinates
        xs = (torch.arange(w, device=fg.device, dtype=torch.float32) + 0.5) * (2.0 / w) - 1.0
        ys = (torch.arange(h, device=fg.device, dtype=torch.float32) + 0.5) * (2.0 / h) - 1.0
        pix = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=0)[None]  # (1, 2, h, w)
        err = pointwise(proj, pix.expand_as(proj), self.config.norms["consistency"]) * fg[:, None]
        # Official: MSE over every pixel of the masked maps (background contributes zeros).
        return weighted_mean(err, sample_mask(batch.get("has_iuv"), err))

    def _vertices(self, pred, batch, cache):
        v, g = pred.get("vertices"), self.gt_vertices(batch, cache)
        if v is None or g is None:
            return None
        err = pointwise(v.float(), g, self.config.norms["vertices"])
        return weighted_mean(err, sample_mask(batch.get("has_smpl"), err))

    # -- total -----------------------------------------------------------------------------
    def forward(
        self, pred: dict, batch: dict, pretrain: bool = False
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Weighted total and the raw (unweighted, detached) value of every computed term.

        ``pretrain`` keeps only ``dp_mask`` and ``dp_uv`` (the official CNet-only stage).
        """
        weights = {
            name: w
            for name, w in self.config.weights.items()
            if not (pretrain and name not in DECOMR_PRETRAIN_TERMS)
        }
        return weighted_total(self.terms, weights, pred, batch, self.skipped)
