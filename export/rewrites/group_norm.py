"""GroupNorm for export: statistics reduced one axis at a time, for ONNX Runtime accuracy.

Why: at opset 17 the exporter writes ``nn.GroupNorm`` as Reshape + InstanceNormalization +
affine. ONNX Runtime's CPU kernels sum a whole group in one float32 pass; over DecoMR's
GroupNorm groups (8 channels x 64 x 64 = 32,768 values) that costs about 1e-4 of the normalised
output, and DecoMR's hourglass stacks ~20 of them: the exported edge model was 2.3e-4 m off
PyTorch (float32 PyTorch vs float64: 8e-6 m). A one-pass ``ReduceMean`` over the flattened group
is no better. Reducing width, then height, then the group's channels (means of equal-sized
blocks, so the same value in exact arithmetic) keeps every partial sum short and brings ONNX
Runtime to PyTorch's accuracy (1e-6 on one GroupNorm).

The form is plain Reshape/ReduceMean/Sub/Mul/Sqrt/Div/Add: every TensorRT version parses it
(InstanceNormalization needed a plugin before TensorRT 8.6). Variance is two-pass (mean of the
centred squares) and the epsilon sits inside the square root as in ``nn.GroupNorm``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class AxiswiseGroupNorm(nn.Module):
    """Drop-in for a 4-D ``nn.GroupNorm`` (same ``weight``/``bias``), equal to it in float64."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True):
        super().__init__()
        self.num_groups, self.num_channels, self.eps = num_groups, num_channels, eps
        self.affine = affine
        if affine:
            self.weight = nn.Parameter(torch.ones(num_channels))
            self.bias = nn.Parameter(torch.zeros(num_channels))

    @classmethod
    def like(cls, other: nn.GroupNorm) -> AxiswiseGroupNorm:
        """The same normalisation with ``other``'s parameters (shared, not copied)."""
        new = cls(other.num_groups, other.num_channels, other.eps, other.affine)
        if other.affine:
            new.weight, new.bias = other.weight, other.bias
        return new

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        y = x.unflatten(1, (self.num_groups, self.num_channels // self.num_groups))
        mean = y.mean(dim=-1, keepdim=True).mean(dim=-2, keepdim=True).mean(dim=-3, keepdim=True)
        centred = y - mean
        square = centred * centred
        var = square.mean(dim=-1, keepdim=True).mean(dim=-2, keepdim=True)
        var = var.mean(dim=-3, keepdim=True)
        out = (centred / torch.sqrt(var + self.eps)).reshape(shape)
        if self.affine:
            out = out * self.weight[:, None, None] + self.bias[:, None, None]
        return out
