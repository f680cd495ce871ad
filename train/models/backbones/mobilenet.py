"""MobileNetV2 (Sandler et al., CVPR 2018) and a light FPN neck: the edge variants' backbone.

Parameter names follow torchvision's ``MobileNetV2`` (``features.{i}.conv...``), so ImageNet
weights a user already has load by name (nothing is downloaded). :class:`MobileFeatureNet` fuses
three strides top-down into one map at ``out_stride`` (8: 28x28 for a 224 input), the
counterpart of HRNet's single high-resolution output. ReLU6 exports as Clip, which TensorRT and
ONNX Runtime fuse into the convolution.
"""

from __future__ import annotations

from torch import Tensor, nn

from hmrt.train.models.backbones.resnet import init_conv_bn


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of ``divisor`` without dropping more than 10%."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class ConvBNAct(nn.Sequential):
    """Conv + BatchNorm (+ ReLU6): torchvision's ``Conv2dNormActivation`` layout (keys 0, 1)."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise 3x3 -> project (1x1, linear), residual when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(ConvBNAct(cin, hidden, kernel=1))
        layers += [
            ConvBNAct(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)
        self.out_channels = cout

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


# (expansion t, channels c, repeats n, stride s) of MobileNetV2's inverted-residual stages.
MOBILENET_V2_SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


class MobileNetV2(nn.Module):
    """MobileNetV2 ``features`` (no 1280-channel head, no classifier) returning chosen stages.

    ``forward`` returns the outputs of ``features[i]`` for ``i`` in ``out_indices`` (stride 8 is
    index 6, stride 16 index 13, stride 32 index 17 for the standard settings).
    """

    def __init__(
        self, width: float = 1.0, out_indices: tuple[int, ...] = (6, 13, 17), in_channels: int = 3
    ):
        super().__init__()
        cin = make_divisible(32 * width)
        layers: list[nn.Module] = [ConvBNAct(in_channels, cin, stride=2)]
        channels = [cin]
        for t, c, n, s in MOBILENET_V2_SETTINGS:
            cout = make_divisible(c * width)
            for i in range(n):
                layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
                channels.append(cout)
        last = max(out_indices)
        self.features = nn.Sequential(*layers[: last + 1])
        self.out_indices = tuple(out_indices)
        self.out_channels = [channels[i] for i in self.out_indices]
        init_conv_bn(self)

    def forward(self, x: Tensor) -> list[Tensor]:
        outs = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.out_indices:
                outs.append(x)
        return outs


class MobileFeatureNet(nn.Module):
    """MobileNetV2 + top-down FPN fusion -> one ``(N, out_channels, H/8, W/8)`` feature map.

    Laterals are 1x1 conv + BN to ``out_channels``; coarser maps are upsampled (nearest, x2) and
    added; a depthwise-separable 3x3 (``smooth``) mixes the sum.
    """

    def __init__(self, width: float = 1.0, out_channels: int = 32, in_channels: int = 3):
        super().__init__()
        self.body = MobileNetV2(width, out_indices=(6, 13, 17), in_channels=in_channels)
        self.lateral = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))
            for c in self.body.out_channels
        )
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.smooth = nn.Sequential(
            ConvBNAct(out_channels, out_channels, groups=out_channels),
            ConvBNAct(out_channels, out_channels, kernel=1),
        )
        self.out_channels = out_channels
        self.stride = 8
        init_conv_bn(self.lateral)
        init_conv_bn(self.smooth)

    def forward(self, x: Tensor) -> Tensor:
        s8, s16, s32 = self.body(x)
        y = self.lateral[2](s32)
        y = self.lateral[1](s16) + self.upsample(y)
        y = self.lateral[0](s8) + self.upsample(y)
        return self.smooth(y)
