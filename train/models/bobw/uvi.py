"""BoBW's UVI (UV Inpainting): DecoMR's UVNet on the DMP and IK UV maps, 9 maps at 128x128.

Input at ``warp_res`` (64), concatenated ("aggregation", paper §3.3): the transferred local
feature with its image x, y and occupancy channels, the transferred DMP maps (location, joint,
displacement; 0 where no pixel landed), the IK maps (posed template location map, refined
joints distributed by part, their difference), then, as DecoMR's UVNet has them, the broadcast
global feature (``uvi_global``) and the reference T-pose location map (``uvi_ref_map``). The
trunk is DecoMR's (:func:`uv_decoder_layers`, hourglass capped by ``hg_max_channels``); the
head ends in 9 channels: the complete location, joint and displacement maps at ``uv_res``.
The camera MLP on the pooled backbone code lives here as in DecoMR's UVNet (seed-bobw.md §1.1:
the paper trains UVI with DMP and IK frozen, and ``l_j2d``/``l_con`` are UVI losses).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from hmrt.train.models.bobw.config import BoBWConfig
from hmrt.train.models.decomr.lnet import camera_head, global_head, uv_decoder_layers

UV_MAPS = 9
"""UVI output channels: location (3), joint (3), displacement (3)."""


class UVI(nn.Module):
    """``forward(uv_features, uv_dmp, uv_ik, codes) -> (uv_maps (N,9,R,R), cam (N,3))``.

    ``uv_features`` ``(N,C+3,S,S)``, ``uv_dmp`` and ``uv_ik`` ``(N,9,S,S)``, ``codes`` the pooled
    backbone code. Names: ``fc_head``, ``camera``, ``uv_conv1``, ``hg``, ``uv_conv2``,
    ``decoder``, ``uv_end`` (DecoMR's UVNet); ``ref_map`` a non-persistent buffer.
    """

    def __init__(self, config: BoBWConfig, ref_map: np.ndarray):
        super().__init__()
        code, width, hidden = config.code_channels, config.warp_channels, config.head_hidden
        self.warp_res = config.warp_res
        self.use_global, self.use_ref = bool(config.uvi_global), bool(config.uvi_ref_map)
        if self.use_global:
            self.fc_head = global_head(code, hidden, config.global_channels)
        self.camera = camera_head(code, hidden, config.mean_cam)
        ref = torch.as_tensor(np.asarray(ref_map, dtype=np.float32)).reshape(
            1, 3, *ref_map.shape[-2:]
        )
        self.register_buffer("ref_map", ref, persistent=False)
        cin = (width + 3) + 2 * UV_MAPS
        cin += config.global_channels if self.use_global else 0
        cin += 3 if self.use_ref else 0
        layers = uv_decoder_layers(config, cin, width, out_channels=UV_MAPS)
        self.uv_conv1, self.hg, self.uv_conv2, self.decoder, self.uv_end = layers
        if config.uvi_residual:  # a correction of the IK maps: start at exactly zero
            nn.init.zeros_(self.uv_end[1].weight)
            nn.init.zeros_(self.uv_end[1].bias)

    def forward(
        self, uv_features: Tensor, uv_dmp: Tensor, uv_ik: Tensor, codes: Tensor
    ) -> tuple[Tensor, Tensor]:
        n, s = codes.shape[0], self.warp_res
        parts = [uv_features, uv_dmp.to(uv_features.dtype), uv_ik.to(uv_features.dtype)]
        if self.use_global:
            parts.append(self.fc_head(codes)[:, :, None, None].expand(-1, -1, s, s))
        if self.use_ref:
            parts.append(self.ref_map.expand(n, -1, -1, -1).to(uv_features.dtype))
        x = self.uv_conv2(self.hg(self.uv_conv1(torch.cat(parts, dim=1))))
        return self.uv_end(self.decoder(x)), self.camera(codes)
