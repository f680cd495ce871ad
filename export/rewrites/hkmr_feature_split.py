"""HKMR's E_c / S / C with the image feature projected once per image, not once per call.

Why: every first layer of HKMR's MLPs reads the concatenation ``[Φ, parts]`` with the 2048-D
image feature Φ (paper; 256-D edge) in front, and is called 1 + (passes - 1) times per chain per
outer step (E_c) or once per outer step (S, C): 4 x 3 = 12 times per chain in the paper's
configuration, each a 2048-wide product on the same Φ. Φ never changes within an image, so
(seed-hkmr.md §4 row 4, exact algebra)::

    W [Φ, p] + b = (W_Φ Φ + b) + W_p p

:class:`SplitConditionedMLP` computes ``W_Φ Φ + b`` once in :meth:`prepare` (the regressor calls
it once per image) and only the narrow ``W_p p`` per call, as one Gemm whose bias input is the
prepared projection (so a call costs Concat + Gemm + ReLU, as before, with K = |p| instead of
|Φ| + |p|); the rest of the MLP is shared with the module it replaces. Equal to
``ConditionedMLP`` up to float32 rounding (the sum runs in another order); weights are the
column blocks of the original ``first`` Linear. The training form stays the paper's
concatenation so checkpoints keep one ``first`` weight per module.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from hmrt.train.models.hkmr.regressor import ConditionedMLP


class SplitConditionedMLP(nn.Module):
    """Drop-in for :class:`ConditionedMLP`: ``prepare(Φ) = W_Φ Φ + b``, ``forward`` adds ``W_p p``."""

    def __init__(self, feature_dim: int, cond_dim: int, hidden: int):
        super().__init__()
        self.feature_dim, self.cond_dim = feature_dim, cond_dim
        self.feature = nn.Linear(feature_dim, hidden)
        self.cond = nn.Linear(cond_dim, hidden, bias=False)
        self.rest: nn.Module = nn.Identity()

    @classmethod
    def like(cls, other: ConditionedMLP) -> SplitConditionedMLP:
        """The same function with ``other.first`` split by columns and ``other.rest`` shared."""
        first = other.first
        new = cls(other.feature_dim, other.cond_dim, first.out_features).to(first.weight)
        f = other.feature_dim
        with torch.no_grad():
            new.feature.weight.copy_(first.weight[:, :f])
            new.feature.bias.copy_(first.bias)
            new.cond.weight.copy_(first.weight[:, f:])
        new.rest = other.rest
        return new

    def prepare(self, feature: Tensor) -> Tensor:
        """``W_Φ Φ + b``: the per-image part of the first layer, computed once."""
        return self.feature(feature)

    def forward(self, prepared: Tensor, parts: list[Tensor]) -> Tensor:
        # addmm exports as one Gemm with ``prepared`` as its C input: no extra Add node.
        return self.rest(torch.addmm(prepared, torch.cat(parts, dim=1), self.cond.weight.t()))
