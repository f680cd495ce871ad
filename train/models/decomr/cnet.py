"""CNet (official ``DPNet``): ResNet encoder + upsampling decoder predicting the IUV image.

The IUV is ``[mask, U, V]`` at stride ``2**warp_level`` (56x56 for a 224 crop), all sigmoid in
[0, 1]: a foreground probability and coordinates on the body's continuous single-chart UV map
(no part index, so no argmax anywhere). The decoder output before the heads (``dp_feature``)
is the local feature that LNet transfers to UV space; the pooled layer4 vector (``codes``)
feeds the global-feature and camera MLPs.

The encoder is the official ResNet or, for hmrt's edge presets, MobileNetV2 (``body``, the
same module names and shapes as DaNet-edge's ``img2iuv.iuv_est.body``, so training starts from
its trained weights) with a 1x1 conv + BN + ReLU ``lateral`` per used stride that maps each stage
to the decoder width ResNet-18 would have there; the decoder and heads do not change.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from hmrt.train.models.backbones.mobilenet import MobileNetV2
from hmrt.train.models.backbones.resnet import ResNet, init_conv_bn
from hmrt.train.models.decomr.blocks import ConvBottleNeck
from hmrt.train.models.decomr.config import MOBILENET_STAGES, DecoMRConfig


class CNet(nn.Module):
    """``forward(image) -> (iuv (N,3,h,w), dp_feature (N,C,h,w), codes (N,C5))``.

    Official names: ``resnet`` (torchvision layout; the official unused ``resnet.fc`` is not
    built), ``dp_layers.{i}`` = ``[Upsample x2 nearest, ConvBottleNeck]`` with ``dp_layers[0]``
    the finest stage, ``dp_uv_end`` / ``dp_mask_end`` = ``[ConvBottleNeck(C -> 32), 1x1 conv,
    Sigmoid]``.
    """

    def __init__(self, config: DecoMRConfig):
        super().__init__()
        channels = config.channel_list
        level = config.warp_level
        self.mobilenet = config.mobilenet
        if self.mobilenet:  # hmrt edge: DaNet-edge's encoder + laterals to the decoder widths
            strides = [2**k for k in range(level, 6)]
            self.body = MobileNetV2(
                config.mobilenet_width, out_indices=tuple(MOBILENET_STAGES[s] for s in strides)
            )
            self.lateral = nn.ModuleList(
                nn.Sequential(
                    nn.Conv2d(cin, channels[k], kernel_size=1, bias=False),
                    nn.BatchNorm2d(channels[k]),
                    nn.ReLU(inplace=True),
                )
                for k, cin in zip(range(level, 6), self.body.out_channels, strict=True)
            )
            init_conv_bn(self.lateral)
        else:
            depth = int(config.backbone.removeprefix("resnet"))
            self.resnet = ResNet(
                depth=depth, num_classes=0, widths=config.stage_widths
            )  # official: resnet (ResNetBackbone)
        # official: dp_layers; entry i maps channel_list[i+1] -> channel_list[i]
        self.dp_layers = nn.ModuleList(
            nn.Sequential(
                nn.Upsample(scale_factor=2.0, mode="nearest"),  # official nn.Upsample default
                ConvBottleNeck(channels[i + 1], channels[i], config.norm),
            )
            for i in range(level, 5)
        )
        width = channels[level]
        # official: dp_uv_end, dp_mask_end
        self.dp_uv_end = nn.Sequential(
            ConvBottleNeck(width, 32, config.norm), nn.Conv2d(32, 2, kernel_size=1), nn.Sigmoid()
        )
        self.dp_mask_end = nn.Sequential(
            ConvBottleNeck(width, 32, config.norm), nn.Conv2d(32, 1, kernel_size=1), nn.Sigmoid()
        )

    def encode(self, image: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Pooled code ``(N, C5)`` and the feature list ``[image, stem, layer1..layer4]`` (for
        MobileNetV2 the strides the decoder reads, from ``2**warp_level`` to 32)."""
        if self.mobilenet:
            features = [lat(f) for lat, f in zip(self.lateral, self.body(image), strict=True)]
            return torch.mean(features[-1], dim=(2, 3)), [image, *features]
        r = self.resnet
        x1 = r.relu(r.bn1(r.conv1(image)))
        x2 = r.layer1(r.maxpool(x1))
        x3 = r.layer2(x2)
        x4 = r.layer3(x3)
        x5 = r.layer4(x4)
        # official: AvgPool2d(7) + view, which fixes the input at 224; the global mean is the
        # same there and exports as GlobalAveragePool for any input size.
        codes = torch.mean(x5, dim=(2, 3))
        return codes, [image, x1, x2, x3, x4, x5]

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        codes, features = self.encode(image)
        y = features[-1]
        first = len(features) - 1 - len(self.dp_layers)  # index of the finest skip
        for i in range(len(self.dp_layers) - 1, -1, -1):
            y = self.dp_layers[i](y) + features[first + i]
        iuv = torch.cat([self.dp_mask_end(y), self.dp_uv_end(y)], dim=1)
        return iuv, y, codes
