"""DecoMR's building blocks: the GroupNorm bottleneck ``ConvBottleNeck`` and the UV hourglass.

Same structure and parameter names as the official ``models/layers.py`` (``conv1..3``,
``norm1..3``, ``skip_conv``; ``HgNet.down_layers.{i}.0``, ``up_layers.{i}.1``, ``norm``), so an
official checkpoint loads by renames only. Unlike torchvision's bottleneck, every conv has a bias
and the normalisation is GroupNorm with 8 channels per group (the released ``norm_type="GN"``)
or BatchNorm (``"BN"``).
"""

from __future__ import annotations

from torch import Tensor, nn


def make_norm(norm: str, channels: int) -> nn.Module:
    """GroupNorm with ``channels // 8`` groups (official GN rule) or BatchNorm2d."""
    if norm == "GN":
        return nn.GroupNorm(max(1, channels // 8), channels)
    if norm == "BN":
        return nn.BatchNorm2d(channels)
    raise ValueError(f"unknown norm {norm!r} (use 'GN' or 'BN')")


class ConvBottleNeck(nn.Module):
    """1x1 (out/2) -> 3x3 (out/2) -> 1x1 (out), norm after each, residual (1x1 ``skip_conv``
    when the widths differ), ReLU after the sum. Official ``layers.ConvBottleNeck``."""

    def __init__(self, in_channels: int, out_channels: int, norm: str = "GN"):
        super().__init__()
        mid = out_channels // 2
        self.in_channels, self.out_channels = in_channels, out_channels
        self.conv1 = nn.Conv2d(in_channels, mid, kernel_size=1)
        self.conv2 = nn.Conv2d(mid, mid, kernel_size=3, padding=1)
        self.conv3 = nn.Conv2d(mid, out_channels, kernel_size=1)
        self.norm1 = make_norm(norm, mid)
        self.norm2 = make_norm(norm, mid)
        self.norm3 = make_norm(norm, out_channels)
        if in_channels != out_channels:
            self.skip_conv = nn.Conv2d(in_channels, out_channels, kernel_size=1)
        self.relu = nn.ReLU(inplace=True)  # official: the shared ``nl_layer`` (no parameters)

    def forward(self, x: Tensor) -> Tensor:
        y = self.relu(self.norm1(self.conv1(x)))
        y = self.relu(self.norm2(self.conv2(y)))
        y = self.norm3(self.conv3(y))
        residual = self.skip_conv(x) if self.in_channels != self.out_channels else x
        return self.relu(y + residual)


class HgNet(nn.Module):
    """The LNet hourglass (official ``layers.HgNet``): ``levels`` down stages of
    ``ConvBottleNeck(C -> C') + MaxPool 2``, up stages of ``Upsample x2 (nearest) +
    ConvBottleNeck(C' -> C)`` plus the level's input, then a final norm (no ReLU).

    Officially ``C' = 2C`` at every level (256 -> 2048 over 3 levels: 27 M parameters and 32 of
    the model's 54 GFLOPs). ``max_channels`` caps ``C'`` (0 = no cap): the edge variant's knob;
    the module structure and names stay the same.
    """

    def __init__(self, in_channels: int, levels: int, norm: str = "GN", max_channels: int = 0):
        super().__init__()
        self.norm = make_norm(norm, in_channels)
        down, up = [], []
        channels = in_channels
        for _ in range(levels):
            wider = 2 * channels if max_channels <= 0 else min(2 * channels, max_channels)
            down.append(nn.Sequential(ConvBottleNeck(channels, wider, norm), nn.MaxPool2d(2, 2)))
            upsample = nn.Upsample(scale_factor=2.0, mode="nearest")
            up.append(nn.Sequential(upsample, ConvBottleNeck(wider, channels, norm)))
            channels = wider
        self.down_layers = nn.ModuleList(down)
        self.up_layers = nn.ModuleList(up)

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        for layer in self.down_layers:
            skips.append(x)
            x = layer(x)
        for i in range(len(self.up_layers) - 1, -1, -1):
            x = self.up_layers[i](x) + skips[i]
        return self.norm(x)
