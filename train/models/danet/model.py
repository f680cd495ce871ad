"""DaNet (Zhang et al., "Learning 3D Human Shape and Pose from Dense Body Parts", TPAMI).

Re-implemented from shared/research/seed-danet.md; where the paper is vague or disagrees with
the official code, the official code is followed (RoI scale rule, soft-argmax mapping,
``align_corners=True``, BatchNorm over graph nodes) except PartDrop, which by default zeroes the
cleaned maps as the paper's Eq. 5 says (``partdrop_mode="logits"`` gives the official code).

Eval outputs (``model.eval()``; the ONNX contract): ``vertices (N,V,3)``, ``joints3d (N,24,3)``
(metres, root-relative), ``joints2d (N,24,2)`` (crop pixels), ``cam (N,3)``,
``rotmats (N,24,3,3)``, ``betas (N,10)``.

Training outputs (``model.train()``): the eval keys plus the intermediates below. Key names are
those of ``hmrt.train.losses.danet.PRED_KEYS``; ``h x w`` is the feature size (56x56 paper,
28x28 edge), ``R`` the RoI size (56 paper, 20 edge); all logits are raw.

=====================  =====================  =================================================
key                    shape                  meaning / supervision
=====================  =====================  =================================================
``iuv_index``          (N,25,h,w)             global part logits (bg + 24 DensePose parts); CE
``iuv_u``, ``iuv_v``   (N,25,h,w)             global U, V per part channel; L1 at GT foreground
``iuv_ann``            (N,15,h,w)             coarse segmentation logits (auxiliary CE)
``heatmaps``           (N,24,h,w)             joint heatmap logits (official: no direct loss)
``roi_centres``        (N,24,2)               soft-argmax joints, normalised ``idx/(h/2)-1``;
                                              L_roi vs GT 2D joints in [-1, 1]
``roi_theta``          (N,24,2,3)             RoI affine per joint (after jitter, no grad): warp
                                              GT IUV with it (``align_corners=True``) for the
                                              partial targets; ``model.part_table`` (24,6)
                                              lists each joint's DensePose parts
``part_index``         (N,24,7,R,R)           partial part logits (ch 0 = none of the parts)
``part_u``, ``part_v`` (N,24,7,R,R)           partial U, V
``refine_rotmats``     [(N,24,3,3)]           rotations from X (before refinement)
``refine_positions``   [(N,24,3), (N,24,3)]   joint positions from Y and Y^ (official target:
                                              body-frame SMPL joints)
``partdrop_keep``      (N,25)                 1 = part kept by PartDrop (0 = dropped)
``rotmats``, ``betas``, ``cam``, ``vertices``, ``joints3d``, ``joints2d``: final, as in eval
=====================  =====================  =================================================

Coordinates: ``roi_centres`` are trained against 2D joints in hmrt's crop convention
(``x_n = 2 px / res - 1``, pixel edges at -1/+1) while the RoIs sample with ``align_corners=True``
(pixel centres at -1/+1) as the official code does; the two differ by at most half a feature
pixel (zero at the crop centre), which the heads absorb.

Gradients: the Index logits reach stage 2 only through an argmax (none); U/V do (the cleaned
maps are ``U * onehot``); RoI centres and scales are detached, so the heatmap head learns only
from ``roi_centres``' loss; the RoI-pooled features carry gradient into the backbone.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from hmrt.train.models.base import BodyHead, HmrModel, make_body_layer
from hmrt.train.models.danet import tables
from hmrt.train.models.danet.config import DaNetConfig
from hmrt.train.models.danet.estimator import IUVEstimator
from hmrt.train.models.danet.iuv import PartDrop
from hmrt.train.models.danet.regressor import DecomposedRegressor
from hmrt.train.models.registry import register_model

K = tables.NUM_JOINTS


@register_model(
    "danet",
    config_cls=DaNetConfig,
    variants={"paper": DaNetConfig.paper, "edge": DaNetConfig.edge},
    summary="DaNet: dense-body-part (IUV) guided SMPL regression with joint-centric RoIs",
)
class DaNet(HmrModel):
    """DaNet; ``DaNet(config, body=None)``, ``forward(image) -> dict`` (module docstring)."""

    train_only = (
        "img2iuv.final_pred.predict_ann_index",
        "regressor.pose_regressors.0",
        "regressor.coord_regressors",
    )

    def __init__(self, config: DaNetConfig, body: Any = None):
        super().__init__(config)
        self.img2iuv = IUVEstimator(config)
        self.part_drop = PartDrop(config.partdrop_rate)
        self.regressor = DecomposedRegressor(config)
        self.body = BodyHead(make_body_layer(body), config.input_size)

    @property
    def part_table(self) -> Tensor:
        """``(24, 6)`` DensePose part ids of each joint's partial channels 1..6 (losses)."""
        return self.part_drop.part_table[:, 1:]

    @property
    def body_hash(self) -> str | None:
        """Hash of the body model the outputs use (from the body layer, when it has one)."""
        layer = self.body.layer
        value = getattr(layer, "hash", None) or getattr(layer, "body_hash", None)
        return None if value is None else str(value)

    def forward(self, image: Tensor) -> dict[str, Any]:
        stage1 = self.img2iuv(image)
        u, v, index = stage1["iuv_u"], stage1["iuv_v"], stage1["iuv_index"]
        onehot, partial = stage1["iuv_onehot"], stage1["partial"]
        clean = self.img2iuv.clean
        drop = self.training and self.part_drop.rate > 0
        mode = self.config.partdrop_mode
        if drop:
            keep, keep_partial = self.part_drop.keep_masks(image.shape[0], image.device)
            keep = keep.to(u.dtype)
            keep_partial = keep_partial.to(partial.dtype)
            if mode == "logits":  # official: zero raw logits, then argmax
                g, p = keep[:, :, None, None], keep_partial[:, :, None, :, None, None]
                u, v, index, partial = u * g, v * g, index * g, partial * p
                onehot = clean.global_onehot(index)
        global_iuv = clean.clean_global(u, v, onehot)
        partial_iuv = clean.clean_partial(partial)
        if drop and mode == "maps":  # paper Eq. 5: remove the parts from the cleaned maps
            global_iuv = global_iuv * keep.repeat(1, 3)[:, :, None, None]
            partial_iuv = partial_iuv * keep_partial[:, :, None, :, None, None]
        r = self.config.roi_size
        params = self.regressor(global_iuv, partial_iuv.reshape(-1, K, 21, r, r))
        vertices, joints3d, joints2d = self.body(params["rotmats"], params["betas"], params["cam"])
        out: dict[str, Any] = {
            "vertices": vertices,
            "joints3d": joints3d,
            "joints2d": joints2d,
            "cam": params["cam"],
            "rotmats": params["rotmats"],
            "betas": params["betas"],
        }
        if not self.training:
            return out
        part = stage1["partial"]
        out.update(
            iuv_index=stage1["iuv_index"],
            iuv_u=stage1["iuv_u"],
            iuv_v=stage1["iuv_v"],
            heatmaps=stage1["heatmaps"],
            roi_centres=stage1["roi_centres"],
            roi_theta=stage1["roi_theta"],
            part_u=part[:, :, 0],
            part_v=part[:, :, 1],
            part_index=part[:, :, 2],
            refine_rotmats=params["refine_rotmats"],
            refine_positions=params["refine_positions"],
        )
        if "iuv_ann" in stage1:  # absent when stage 1 is frozen (eval mode) for stage-2 training
            out["iuv_ann"] = stage1["iuv_ann"]
        if drop:
            out["partdrop_keep"] = keep
        return out
