"""Graph convolutions over a fixed set of nodes (Kipf & Welling), as in DaNet's refinement."""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn


class GraphConv(nn.Module):
    """``y = (A @ x) @ W + b`` for node features ``x (N, nodes, in)``.

    ``weight`` is stored ``(in, out)`` (not nn.Linear's ``(out, in)``), as in DaNet's official
    ``GraphConv``, so official checkpoints load without transposes.
    """

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        nn.init.xavier_uniform_(self.weight, gain=nn.init.calculate_gain("relu"))

    def forward(self, x: Tensor, adjacency: Tensor) -> Tensor:
        return torch.matmul(torch.matmul(adjacency, x), self.weight) + self.bias


class GCN(nn.Module):
    """Stack of :class:`GraphConv`, each followed by ``BatchNorm1d(nodes)`` and ReLU.

    The BatchNorm normalises the ``(N, nodes, C)`` tensor over its node axis (one statistic per
    node, pooled over batch and features), exactly as DaNet's code applies ``BatchNorm1d(24)``;
    export folds it into a per-node scale and shift. Layer widths: in -> hidden ... -> out.
    """

    def __init__(self, in_features: int, hidden: int, out_features: int, layers: int, nodes: int):
        super().__init__()
        dims = [in_features] + [hidden] * (layers - 1) + [out_features]
        self.gc = nn.ModuleList(GraphConv(a, b) for a, b in itertools.pairwise(dims))
        self.act = nn.ModuleList(
            nn.Sequential(nn.BatchNorm1d(nodes), nn.ReLU(inplace=True)) for _ in range(layers)
        )

    def forward(self, x: Tensor, adjacency: Tensor) -> Tensor:
        for conv, act in zip(self.gc, self.act):
            x = act(conv(x, adjacency))
        return x
