"""DaNet stage 1: image -> global IUV, joint heatmaps, joint-centric RoIs, partial IUV.

``iuv_est`` (backbone) gives ``F (N, C, h, w)``; ``final_pred`` holds the heads; the 24 heatmaps
go through :class:`SoftArgmax2d` (centres in ``[-1, 1)``), :class:`JointRoITheta` turns the
detached centres into affine RoIs, :class:`GridRoIPool` pools ``F`` per joint and the grouped
partial-IUV conv predicts 24 partial maps. Names follow the official ``IUV_Estimator`` except
that the heads sit at ``img2iuv.final_pred`` (officially inside ``iuv_est``) and the learned RoI
ratio/offset at ``img2iuv.roi_theta`` (see :mod:`hmrt.train.models.danet.official_keys`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from hmrt.train.models.backbones import build_feature_backbone
from hmrt.train.models.danet import tables
from hmrt.train.models.danet.config import DaNetConfig
from hmrt.train.models.danet.iuv import PARTIAL_CHANNELS, IUVClean, IUVPredictHeads
from hmrt.train.models.danet.joint_roi import JointRoITheta
from hmrt.train.models.layers.roi_pool import GridRoIPool
from hmrt.train.models.layers.soft_argmax import SoftArgmax2d

K = tables.NUM_JOINTS


class IUVEstimator(nn.Module):
    """Stage 1 of DaNet; ``forward(image) -> dict`` (see :meth:`forward`)."""

    def __init__(self, config: DaNetConfig):
        super().__init__()
        c = config
        h, w = c.feat_size
        self.roi_size = c.roi_size
        self.center_jitter = c.roi_center_jitter
        self.iuv_est = build_feature_backbone(c.backbone, c.feat_channels, c.backbone_width)
        self.final_pred = IUVPredictHeads(c.feat_channels, c.hm_blocks, c.partial_head)
        self.soft_argmax = SoftArgmax2d(K, h, w, c.hm_temperature)
        self.roi_theta = JointRoITheta(
            (h, w), c.roi_hidden_threshold, c.roi_hidden_scale, c.roi_scale_jitter
        )
        self.roi_pool = GridRoIPool(c.feat_channels, h, w, c.roi_size, K)
        self.clean = IUVClean()

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        """Stage-1 outputs (logits are raw, maps at the feature resolution ``h x w``).

        ``iuv_u``, ``iuv_v``, ``iuv_index`` ``(N,25,h,w)``; ``iuv_onehot`` ``(N,25,h,w)``
        (argmax of ``iuv_index``, no gradient); ``heatmaps`` ``(N,24,h,w)``; ``roi_centres``
        ``(N,24,2)`` soft-argmax positions in ``[-1, 1)``; ``roi_theta`` ``(N,24,2,3)`` (after
        training jitter); ``partial`` ``(N,24,3,7,R,R)`` raw [U, V, I] partial logits; in
        training also ``iuv_ann`` ``(N,15,h,w)``.
        """
        feats = self.iuv_est(image)
        heads = self.final_pred
        out = {
            "iuv_u": heads.predict_u(feats),
            "iuv_v": heads.predict_v(feats),
            "iuv_index": heads.predict_uv_index(feats),
        }
        if self.training:
            out["iuv_ann"] = heads.predict_ann_index(feats)
        out["iuv_onehot"] = self.clean.global_onehot(out["iuv_index"])
        heatmaps = heads.predict_hm(feats)
        centres = self.soft_argmax(heatmaps)
        roi_centres = centres.detach()
        if self.training and self.center_jitter > 0:
            roi_centres = roi_centres + self.center_jitter * (torch.rand_like(roi_centres) - 0.5)
        theta = self.roi_theta(roi_centres, out["iuv_onehot"])
        pooled = self.roi_pool(feats, theta)
        r = self.roi_size
        partial = heads.predict_partial_iuv(pooled).reshape(-1, K, 3, PARTIAL_CHANNELS, r, r)
        out.update(heatmaps=heatmaps, roi_centres=centres, roi_theta=theta, partial=partial)
        return out
