"""FLOP counting for zoo models: convolutions and matrix products only, FLOP = 2 x MAC.

Uses ``torch.utils.flop_counter.FlopCounterMode``, which counts exactly those ops (conv, mm,
bmm, addmm, baddbmm, attention); grid_sample, softmax, BatchNorm and elementwise ops are not
counted. This is the convention of seed-danet.md §1.13 (official DaNet: 33.75 + 12.73 GFLOPs).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@dataclass
class FlopReport:
    """Total FLOPs of one eval forward and the FLOPs per top-level child module."""

    total: int
    per_module: dict[str, int] = field(default_factory=dict)
    input_shape: tuple[int, ...] = ()

    @property
    def gflops(self) -> float:
        """Total in GFLOPs (1e9)."""
        return self.total / 1e9


def count_flops(
    model: nn.Module, batch: int = 1, input_size: tuple[int, int] | None = None
) -> FlopReport:
    """FLOPs per image of ``model`` in eval mode on a random ``(batch, 3, H, W)`` input.

    The model is put in eval mode for the count and restored afterwards. ``input_size``
    defaults to ``model.input_size``.
    """
    h, w = input_size or model.input_size
    param = next(model.parameters())
    image = torch.randn(batch, 3, h, w, device=param.device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False, depth=2) as counter:
            model(image)
    finally:
        model.train(was_training)
    counts = counter.get_flop_counts()
    total = int(sum(counts.get("Global", {}).values()))
    per_module = {}
    for name, ops in counts.items():
        parts = name.split(".")
        if len(parts) == 2:  # "<RootClass>.<child>"
            per_module[parts[1]] = int(sum(ops.values())) // batch
    return FlopReport(total // batch, per_module, (batch, 3, h, w))
