"""BoBW's DMP (Dense Map Prediction): DecoMR's CNet plus three dense 3D map heads.

The paper's DMP predicts, per pixel of the 56x56 stride-4 grid (224 crop), the IUV image on the
continuous chart ``M_i`` and three real-valued maps in root-relative metres: the location map
``M_l`` (the surface point seen at the pixel), the joint map ``M_j`` (the position of the LSP
joint whose part the point belongs to) and the displacement map ``M_d = M_l - M_j``. The paper
does not say how the three heads are built; hmrt gives each DecoMR's IUV-head form (a
``ConvBottleNeck`` to ``dense_head_channels`` then a 1x1 conv) with no output activation
(the paper: values in about -1..1 m, not normalised). seed-bobw.md §1.1.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from hmrt.train.models.bobw.config import BoBWConfig
from hmrt.train.models.decomr.blocks import ConvBottleNeck
from hmrt.train.models.decomr.cnet import CNet

DENSE_MAPS = ("location", "joint", "displacement")
"""The dense 3D maps, in channel order (3 channels each: x, y, z)."""


class DMP(CNet):
    """``forward(image) -> (iuv (N,3,h,w), dense (N,9,h,w), feature (N,C,h,w), codes (N,C5))``.

    ``dense`` is ``[M_l, M_j, M_d]`` (3 channels each). Names below ``resnet``/``dp_layers``/
    ``dp_*_end`` are DecoMR's CNet (:class:`CNet`); the heads are ``dense_heads.{location,
    joint,displacement}``.
    """

    def __init__(self, config: BoBWConfig):
        super().__init__(config)
        width, hidden = config.warp_channels, config.dense_head_channels
        self.dense_heads = nn.ModuleDict(
            {
                name: nn.Sequential(
                    ConvBottleNeck(width, hidden, config.norm), nn.Conv2d(hidden, 3, kernel_size=1)
                )
                for name in DENSE_MAPS
            }
        )
        for head in self.dense_heads.values():  # start near 0 m: the maps are root-relative
            nn.init.normal_(head[1].weight, std=1e-3)
            nn.init.zeros_(head[1].bias)

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        iuv, feature, codes = super().forward(image)
        dense = torch.cat([self.dense_heads[name](feature) for name in DENSE_MAPS], dim=1)
        return iuv, dense, feature, codes
