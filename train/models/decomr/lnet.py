"""LNet (official ``UVNet``): image features -> UV space -> 128x128 location map, plus camera.

The local feature is transferred to a ``warp_res`` UV grid with the predicted IUV
(:class:`FeatureWarp`, the official ``warp_feature``), concatenated with the broadcast global
feature and the reference (T-pose) location map, and turned into the location map ``X`` by 1x1
convs, the hourglass and an upsampling decoder. The camera MLP on the pooled backbone code
lives here because the official code puts it in ``UVNet`` (the paper says "the encoder").
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from hmrt.train.models.decomr.blocks import ConvBottleNeck, HgNet
from hmrt.train.models.decomr.config import DecoMRConfig
from hmrt.train.models.layers.precision import Fp32Module
from hmrt.train.models.layers.uv_scatter import UVScatterMean


class FeatureWarp(Fp32Module):
    """``forward(iuv (N,3,h,w), feature (N,C,h,w)) -> (N, C+3, S, S)`` (official
    ``warp_feature``): ``[mean feature (C), mean source x, mean source y, occupancy]``.

    Pixels with ``mask > threshold`` send ``[feature, x, y]`` (x, y: the pixel's
    ``linspace(-1, 1)`` image coordinates, official) to the texel of their predicted UV; each
    texel holds the mean, empty texels 0, and the last channel is ``count > 0``. The scatter
    is the shared :class:`UVScatterMean` (fixed shapes, ``clamp(count, 1)``, int texel index,
    no gradient through the index). An FP32 island: texel index math and the count divide.

    ``official=True`` reads the IUV as the released official weights predict it: ``v`` grows
    downward (hmrt: toward the head), so the transfer uses ``1 - v``, and the texel is
    ``round(u (S-1))`` (the scatter's ``align_corners=True``); the weights then run unchanged.
    """

    def __init__(
        self, iuv_size: tuple[int, int], uv_size: int, threshold: float, official: bool = False
    ):
        super().__init__()
        self.official = bool(official)
        h, w = iuv_size
        ys = torch.linspace(-1.0, 1.0, h).view(1, 1, h, 1).expand(1, 1, h, w)
        xs = torch.linspace(-1.0, 1.0, w).view(1, 1, 1, w).expand(1, 1, h, w)
        self.register_buffer("coords", torch.cat([xs, ys], dim=1).contiguous(), persistent=False)
        self.scatter = UVScatterMean(
            uv_size, mask_threshold=threshold, align_corners=self.official, occupancy=True
        )

    def forward(self, iuv: Tensor, feature: Tensor) -> Tensor:
        coords = self.coords.expand(feature.shape[0], -1, -1, -1).to(feature.dtype)
        source = torch.cat([feature, coords], dim=1)
        uv = iuv[:, 1:3]
        if self.official:  # official V grows downward: hmrt's v = 1 - V
            uv = torch.cat([uv[:, :1], 1.0 - uv[:, 1:]], dim=1)
        return self.scatter(source, uv, iuv[:, 0:1])


class LNet(nn.Module):
    """``forward(iuv, dp_feature, codes) -> (loc_map (N,3,R,R), cam (N,3), warped)``.

    Official names: ``fc_head``, ``camera``, ``uv_conv1``, ``hg``, ``uv_conv2``, ``decoder``
    (``decoder.{k}`` = ``[Upsample x2 bilinear, ConvBottleNeck]``), ``uv_end``. ``ref_map`` is
    a non-persistent buffer, as officially (a plain attribute there): the reference T-pose
    location map at ``warp_res`` built from the body file, never stored in checkpoints.
    ``warp`` has no parameters (official: the function ``warp_feature``). The location map is
    returned channel-first (official: ``permute(0, 2, 3, 1)`` to channel-last).
    """

    def __init__(self, config: DecoMRConfig, ref_map: np.ndarray):
        super().__init__()
        code, width, hidden = config.code_channels, config.warp_channels, config.head_hidden
        self.warp_res = config.warp_res
        self.warp = FeatureWarp(
            config.iuv_size,
            config.warp_res,
            config.mask_threshold,
            official=config.uv_convention == "official",
        )
        self.fc_head = global_head(code, hidden, config.global_channels)  # official: fc_head
        self.camera = camera_head(code, hidden, config.mean_cam)  # official: camera
        ref = torch.as_tensor(np.asarray(ref_map, dtype=np.float32)).reshape(
            1, 3, *ref_map.shape[-2:]
        )
        self.register_buffer("ref_map", ref, persistent=False)
        # official: uv_conv1 (1x1 convs on [warped C+3, global, reference 3]), hg, uv_conv2,
        # decoder, uv_end
        cin = width + 3 + config.global_channels + 3
        layers = uv_decoder_layers(config, cin, width, out_channels=3)
        self.uv_conv1, self.hg, self.uv_conv2, self.decoder, self.uv_end = layers

    def forward(self, iuv: Tensor, dp_feature: Tensor, codes: Tensor) -> tuple[Tensor, ...]:
        n, s = codes.shape[0], self.warp_res
        warped = self.warp(iuv, dp_feature).to(dp_feature.dtype)
        global_feature = self.fc_head(codes)[:, :, None, None].expand(-1, -1, s, s)
        ref = self.ref_map.expand(n, -1, -1, -1).to(dp_feature.dtype)
        x = self.uv_conv1(torch.cat([warped, global_feature, ref], dim=1))
        x = self.uv_conv2(self.hg(x))
        loc_map = self.uv_end(self.decoder(x))
        return loc_map, self.camera(codes), warped


def global_head(code: int, hidden: int, channels: int) -> nn.Sequential:
    """Official ``fc_head``: the pooled backbone code -> the global feature broadcast over UV."""
    return nn.Sequential(
        nn.Linear(code, hidden),
        nn.BatchNorm1d(hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, channels),
    )


def camera_head(code: int, hidden: int, mean_cam: tuple[float, float, float]) -> nn.Sequential:
    """Official ``camera``: weak perspective ``(s, tx, ty)``, no output activation; the last bias
    starts at ``mean_cam`` (hmrt choice) so an untrained model projects into the crop."""
    head = nn.Sequential(
        nn.Linear(code, hidden),
        nn.BatchNorm1d(hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, hidden // 2),
        nn.BatchNorm1d(hidden // 2),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Linear(hidden // 2, 3),
    )
    with torch.no_grad():
        head[6].bias.copy_(torch.tensor(mean_cam))
    return head


def uv_decoder_layers(
    config: DecoMRConfig, cin: int, width: int, out_channels: int
) -> tuple[nn.Module, ...]:
    """The official ``UVNet`` trunk after the transfer, as ``(uv_conv1, hg, uv_conv2, decoder,
    uv_end)``: 1x1 convs ``cin -> 2w -> 2w -> w``, the hourglass, and an upsampling decoder from
    ``warp_res`` to ``uv_res`` ending in ``out_channels`` maps (DecoMR: 3, the location map;
    BoBW's UVI: 9, the location, joint and displacement maps)."""
    uv_conv1 = nn.Sequential(
        nn.Conv2d(cin, 2 * width, kernel_size=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(2 * width, 2 * width, kernel_size=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(2 * width, width, kernel_size=1),
    )
    hg = HgNet(width, config.hg_levels, config.norm, config.hg_max_channels)
    # official channel rule: cur = min(8, 2**(warp_lv - uv_lv)), halving per decoder stage
    n_up, base = config.uv_upsamples, config.uv_channels
    prev = min(8, 2**n_up)
    uv_conv2 = ConvBottleNeck(width, base * prev, config.norm)
    stages = []
    for k in range(n_up):
        cur = min(prev, 2 ** (n_up - 1 - k))
        stages.append(
            nn.Sequential(
                nn.Upsample(scale_factor=2.0, mode="bilinear", align_corners=False),
                ConvBottleNeck(base * prev, base * cur, config.norm),
            )
        )
        prev = cur
    uv_end = nn.Sequential(
        ConvBottleNeck(base * prev, 32, config.norm), nn.Conv2d(32, out_channels, kernel_size=1)
    )
    return uv_conv1, hg, uv_conv2, nn.Sequential(*stages), uv_end
