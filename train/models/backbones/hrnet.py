"""Pose HRNet (Sun et al., CVPR 2019) as a feature extractor: image -> stride-4 features.

Module and parameter names follow the standard ``PoseHighResolutionNet`` (conv1, bn1, conv2, bn2,
layer1, transition1..3, stage2..4 with ``branches`` and ``fuse_layers``), so COCO-pretrained
pose-HRNet weights load by name. Fuse layers upsample with ``nearest`` (a TensorRT-friendly
Resize); stage 4's last module keeps only the highest-resolution branch
(``multi_scale_output=False``), which is DaNet's 56x56 feature map ``F`` for a 224 input.
"""

from __future__ import annotations

from torch import Tensor, nn

from hmrt.train.models.backbones.resnet import BasicBlock, Bottleneck, init_conv_bn, make_res_layer


class HighResolutionModule(nn.Module):
    """Parallel branches of residual blocks plus the all-to-all multi-resolution fusion."""

    def __init__(self, channels: list[int], num_blocks: int, multi_scale_output: bool = True):
        super().__init__()
        self.num_branches = len(channels)
        self.branches = nn.ModuleList(
            make_res_layer(BasicBlock, c, c, num_blocks) for c in channels
        )
        outputs = self.num_branches if multi_scale_output else 1
        self.fuse_layers = nn.ModuleList()
        for i in range(outputs):
            row = nn.ModuleList()
            for j in range(self.num_branches):
                row.append(self._fuse(channels, j, i))
            self.fuse_layers.append(row)
        self.relu = nn.ReLU(inplace=True)

    @staticmethod
    def _fuse(channels: list[int], src: int, dst: int) -> nn.Module | None:
        if src == dst:
            return None
        if src > dst:  # lower resolution -> 1x1 conv, then nearest upsampling
            return nn.Sequential(
                nn.Conv2d(channels[src], channels[dst], 1, 1, 0, bias=False),
                nn.BatchNorm2d(channels[dst]),
                nn.Upsample(scale_factor=2 ** (src - dst), mode="nearest"),
            )
        steps = []  # higher resolution -> (dst - src) strided 3x3 convs
        for k in range(dst - src):
            last = k == dst - src - 1
            out = channels[dst] if last else channels[src]
            layers: list[nn.Module] = [
                nn.Conv2d(channels[src], out, 3, 2, 1, bias=False),
                nn.BatchNorm2d(out),
            ]
            if not last:
                layers.append(nn.ReLU(inplace=True))
            steps.append(nn.Sequential(*layers))
        return nn.Sequential(*steps)

    def forward(self, xs: list[Tensor]) -> list[Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        fused = []
        for i, row in enumerate(self.fuse_layers):
            y = xs[0] if i == 0 else row[0](xs[0])
            for j in range(1, self.num_branches):
                y = y + (xs[j] if i == j else row[j](xs[j]))
            fused.append(self.relu(y))
        return fused


def _transition(prev: list[int], cur: list[int]) -> nn.ModuleList:
    layers = nn.ModuleList()
    for i, c in enumerate(cur):
        if i < len(prev):
            if c != prev[i]:
                layers.append(
                    nn.Sequential(
                        nn.Conv2d(prev[i], c, 3, 1, 1, bias=False),
                        nn.BatchNorm2d(c),
                        nn.ReLU(inplace=True),
                    )
                )
            else:
                layers.append(None)
        else:
            steps = []
            for j in range(i + 1 - len(prev)):
                out = c if j == i - len(prev) else prev[-1]
                steps.append(
                    nn.Sequential(
                        nn.Conv2d(prev[-1], out, 3, 2, 1, bias=False),
                        nn.BatchNorm2d(out),
                        nn.ReLU(inplace=True),
                    )
                )
            layers.append(nn.Sequential(*steps))
    return layers


class PoseHighResolutionNet(nn.Module):
    """HRNet-W``width`` trunk; ``forward(image) -> (N, width, H/4, W/4)`` features.

    Stages as in the pose-HRNet configs: stage2 1 module / 2 branches, stage3 4 / 3,
    stage4 3 / 4; 4 BasicBlocks per branch; branch widths ``width * (1, 2, 4, 8)``.
    """

    def __init__(self, width: int = 48, in_channels: int = 3, modules: tuple = (1, 4, 3)):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = nn.Conv2d(64, 64, 3, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = make_res_layer(Bottleneck, 64, 64, 4)
        widths = [width * 2**i for i in range(4)]
        prev = [64 * Bottleneck.expansion]
        for s, n_modules in zip((2, 3, 4), modules):
            cur = widths[:s]
            self.add_module(f"transition{s - 1}", _transition(prev, cur))
            stage = [
                HighResolutionModule(list(cur), 4, multi_scale_output=(s < 4 or m < n_modules - 1))
                for m in range(n_modules)
            ]
            self.add_module(f"stage{s}", nn.Sequential(*stage))
            prev = cur
        self.out_channels = width
        self.stride = 4
        init_conv_bn(self)

    @staticmethod
    def _apply_transition(transition: nn.ModuleList, ys: list[Tensor]) -> list[Tensor]:
        out = []
        for i, t in enumerate(transition):
            if t is None:
                out.append(ys[i])
            else:  # new branches grow from the lowest-resolution output
                out.append(t(ys[min(i, len(ys) - 1)]))
        return out

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        ys = [self.layer1(x)]
        ys = self.stage2(self._apply_transition(self.transition1, ys))
        ys = self.stage3(self._apply_transition(self.transition2, ys))
        ys = self.stage4(self._apply_transition(self.transition3, ys))
        return ys[0]
