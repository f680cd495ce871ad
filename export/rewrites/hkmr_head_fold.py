"""HKMR's per-joint heads of one pass folded into one Linear layer per pass direction.

Why: a pass of a chain runs its K per-joint heads one after another, each a Linear layer to 3
numbers reading ψ and the residuals already predicted in the pass (Eq. 1): K tiny, sequential
GEMMs plus K concatenations, times 4 passes x 6 chains x 3 outer steps, which makes the
unrolled graph launch-bound. The heads have no activation (paper: "one fully-connected layer
... that outputs three real-valued numbers"), so a whole pass is affine in ψ (seed-hkmr.md §4
row 3). In pass order, with head p = ``[A_p | B_p]`` and bias ``b_p``::

    Δ = A ψ + b + L Δ   =>   Δ = (I - L)^-1 A ψ + (I - L)^-1 b

where ``L`` is strictly block lower triangular (block (p, p-q) = the columns of head p that
read Δ_{p-q}: all earlier joints for ``joint_hierarchy="all"``, only p-1 for ``"previous"``).
:class:`FoldedJointHeads` is one Linear(d -> 3K) with ``M = (I - L)^-1 A`` and
``c = (I - L)^-1 b``, solved in float64 and rows permuted to chain order (backward passes run
distal -> proximal). Equal to :class:`JointHeads` up to float32 rounding. This is an export
form only: training keeps the paper's per-joint heads, whose parameterisation (and gradient
flow) the paper's ablations are about, even though the function class is the same.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from hmrt.train.models.hkmr.regressor import JointHeads


def fold_heads(heads: JointHeads) -> tuple[Tensor, Tensor]:
    """``(M (3K, d), c (3K,))`` in float64, rows in chain order: ``heads(ψ) = ψ Mᵀ + c``."""
    d, k = heads.embed_dim, heads.num_joints
    device = heads.heads[0].weight.device
    a = torch.zeros(3 * k, d, dtype=torch.float64, device=device)
    b = torch.zeros(3 * k, dtype=torch.float64, device=device)
    lower = torch.zeros(3 * k, 3 * k, dtype=torch.float64, device=device)
    for p, head in enumerate(heads.heads):
        w = head.weight.detach().double()
        rows = slice(3 * p, 3 * p + 3)
        a[rows], b[rows] = w[:, :d], head.bias.detach().double()
        if p == 0:
            continue  # its [ψ, 0] input: the zero block contributes nothing
        sources = range(1, p + 1) if heads.hierarchy == "all" else (1,)
        for q in sources:  # block q-1 of the residual columns reads Δ_{p-q} (most recent first)
            lower[rows, 3 * (p - q) : 3 * (p - q) + 3] = w[:, d + 3 * (q - 1) : d + 3 * q]
    solve = torch.eye(3 * k, dtype=torch.float64, device=device) - lower
    m = torch.linalg.solve_triangular(solve, a, upper=False, unitriangular=True)
    c = torch.linalg.solve_triangular(solve, b[:, None], upper=False, unitriangular=True)[:, 0]
    if heads.backward:  # pass position p is chain joint K-1-p
        order = torch.arange(k - 1, -1, -1, device=device)
        rows = (3 * order[:, None] + torch.arange(3, device=device)).reshape(-1)
        m, c = m[rows], c[rows]
    return m, c


class FoldedJointHeads(nn.Module):
    """Drop-in for :class:`JointHeads`: ψ ``(N, d)`` -> residuals ``(N, 3K)`` by one Linear."""

    def __init__(self, embed_dim: int, num_joints: int):
        super().__init__()
        self.embed_dim, self.num_joints = embed_dim, num_joints
        self.linear = nn.Linear(embed_dim, 3 * num_joints)

    @classmethod
    def like(cls, other: JointHeads) -> FoldedJointHeads:
        """The folded form of ``other`` (its current weights)."""
        m, c = fold_heads(other)
        new = cls(other.embed_dim, other.num_joints).to(other.heads[0].weight)
        with torch.no_grad():
            new.linear.weight.copy_(m)
            new.linear.bias.copy_(c)
        return new

    def forward(self, psi: Tensor) -> Tensor:
        return self.linear(psi)
