"""The HEMlets pose network's parts: backbone, the two upsampling branches and their init.

Module layouts follow the official ``inference/network.py`` (redrock303/HEMlets) so the
``paper`` variant's state dict has the official keys: ``conv_body.{0..3k-1}`` = k x
[ConvTranspose2d(4, 2, 1, no bias), BN, ReLU] and ``conv_tail`` = Conv3x3 (bias).
"""

from __future__ import annotations

from torch import Tensor, nn

from hmrt.train.models.backbones.mobilenet import MobileNetV2
from hmrt.train.models.backbones.resnet import ResNet
from hmrt.train.models.hemlets.config import HemletsConfig


class UpsampleBranch(nn.Module):
    """``num_upsamples`` x (deconv 4x4/2 + BN + ReLU) then a 3x3 conv to ``out_channels``.

    The official ``TwoBranch``: both the image-feature branch (``conv_feature``) and the
    HEMlets / 2D-heatmap branch (``conv_FBI``) are one of these. The 4x4/2/1 deconvolution is an
    exact x2 upsampling (no ``output_padding``).
    """

    def __init__(self, in_channels: int, channels: int, out_channels: int, num_upsamples: int):
        super().__init__()
        body: list[nn.Module] = []
        for i in range(num_upsamples):
            cin = in_channels if i == 0 else channels
            body += [
                nn.ConvTranspose2d(cin, channels, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(channels),
                nn.ReLU(inplace=True),
            ]
        self.conv_body = nn.Sequential(*body)
        self.conv_tail = nn.Conv2d(channels, out_channels, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_tail(self.conv_body(x))


class MobileNetV2C5(MobileNetV2):
    """MobileNetV2 ``features`` up to the stride-32, 320-channel stage, returning that map only.

    Keys stay torchvision's (``features.{i}...``); ``out_channels`` is an int.
    """

    def __init__(self, width: float = 1.0):
        super().__init__(width, out_indices=(17,))
        self.out_channels = self.out_channels[0]

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)


def build_backbone(config: HemletsConfig) -> nn.Module:
    """Stride-32 feature extractor with ``out_channels``: ResNet trunk (torchvision keys
    ``conv1, bn1, layer1..4``, no ``fc``) or MobileNetV2 ``features``."""
    if config.backbone == "mobilenetv2":
        return MobileNetV2C5(config.backbone_width)
    depth = int(config.backbone[len("resnet") :])
    base = max(8, round(64 * config.backbone_width))
    return ResNet(depth, widths=(base, 2 * base, 4 * base, 8 * base))


def init_head(module: nn.Module, logits: nn.Module | None = None) -> None:
    """Head init: convolutions and deconvolutions He-normal (fan_out), biases 0, BN (1, 0);
    the ``logits`` layer N(0, 0.001).

    The official code draws every head weight from N(0, 0.001). Before a BatchNorm that scale
    only changes the gradient (proportional to 1/|w|: 1e8-sized norms that a global clip then
    squashes), so hmrt keeps the small init only where it matters: on the layers producing
    heatmap and volume logits, whose near-zero start makes every volume nearly uniform (joints
    start at the crop centre) instead of random peaks.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    if logits is not None:
        nn.init.normal_(logits.weight, mean=0.0, std=0.001)
