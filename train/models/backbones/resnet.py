"""ResNet blocks and networks with torchvision's parameter names (``conv1 ... layer4, fc``).

Written here (no torchvision dependency). Two extensions used by DaNet:

* ``in_channels`` and a truncated depth (``num_stages=3`` drops ``layer4``), as in the official
  ``SmplResNet(truncate=1)`` local stream;
* ``parallel``: K independent copies of a block in one module via grouped convolutions
  (every width multiplied by K, ``groups=K``), as in DaNet's per-joint ``LimbResLayers``.
  This is not ResNeXt's cardinality: the groups never mix.
"""

from __future__ import annotations

from torch import Tensor, nn


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (a BatchNorm follows)."""
    return nn.Conv2d(in_planes, out_planes, 3, stride, 1, bias=False, groups=groups)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual; ``parallel`` copies as grouped convolutions."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        parallel: int = 1,
    ):
        super().__init__()
        k = parallel
        self.conv1 = conv3x3(inplanes * k, planes * k, stride, groups=k)
        self.bn1 = nn.BatchNorm2d(planes * k)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes * k, planes * k, groups=k)
        self.bn2 = nn.BatchNorm2d(planes * k)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 (x4) bottleneck with a residual (torchvision v1.5: stride on the 3x3)."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        parallel: int = 1,
    ):
        super().__init__()
        k = parallel
        width = planes * k
        self.conv1 = nn.Conv2d(inplanes * k, width, 1, bias=False, groups=k)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride, groups=k)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, planes * self.expansion * k, 1, bias=False, groups=k)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion * k)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def make_res_layer(
    block: type[BasicBlock] | type[Bottleneck],
    inplanes: int,
    planes: int,
    blocks: int,
    stride: int = 1,
    parallel: int = 1,
) -> nn.Sequential:
    """``blocks`` residual blocks; the first changes width/stride through a 1x1 projection."""
    downsample = None
    out = planes * block.expansion
    if stride != 1 or inplanes != out:
        downsample = nn.Sequential(
            nn.Conv2d(inplanes * parallel, out * parallel, 1, stride, bias=False, groups=parallel),
            nn.BatchNorm2d(out * parallel),
        )
    layers = [block(inplanes, planes, stride, downsample, parallel)]
    layers += [block(out, planes, parallel=parallel) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


RESNET_SPECS: dict[int, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, ...]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
}


class ResNet(nn.Module):
    """ResNet trunk with optional classifier; ``forward`` returns logits or the last feature map.

    ``depth`` picks torchvision's block/layer spec (18, 34, 50); ``blocks``/``widths`` override it
    (small trunks for the edge variant). ``stem="7x7"`` is the standard 7x7/2 conv + 3x3/2
    max-pool; ``stem="3x3"`` is one 3x3/2 conv without pooling, for small inputs.
    """

    def __init__(
        self,
        depth: int = 18,
        in_channels: int = 3,
        num_classes: int = 0,
        num_stages: int = 4,
        blocks: tuple[int, ...] | None = None,
        widths: tuple[int, ...] = (64, 128, 256, 512),
        stem: str = "7x7",
    ):
        super().__init__()
        block, spec_blocks = RESNET_SPECS[depth]
        blocks = tuple(blocks or spec_blocks)
        stem_width = widths[0]
        if stem == "7x7":
            self.conv1 = nn.Conv2d(in_channels, stem_width, 7, 2, 3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        elif stem == "3x3":
            self.conv1 = conv3x3(in_channels, stem_width, stride=2)
            self.maxpool = nn.Identity()
        else:
            raise ValueError(f"unknown ResNet stem {stem!r} (use '7x7' or '3x3')")
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU(inplace=True)
        inplanes = stem_width
        for i in range(num_stages):
            layer = make_res_layer(block, inplanes, widths[i], blocks[i], stride=1 if i == 0 else 2)
            self.add_module(f"layer{i + 1}", layer)
            inplanes = widths[i] * block.expansion
        self.num_stages = num_stages
        self.out_channels = inplanes
        self.num_classes = num_classes
        if num_classes > 0:
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(inplanes, num_classes)
        init_conv_bn(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(self.num_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        if self.num_classes > 0:
            x = self.fc(self.avgpool(x).flatten(1))
        return x


def init_conv_bn(module: nn.Module) -> None:
    """He-normal convolutions (fan_out), BatchNorm weight 1 / bias 0: from-scratch defaults."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
