"""HKMR's hierarchical kinematic regressor: six chain regressors, the shape net and the camera net.

shared/research/seed-hkmr.md §1.4-§1.6, in the paper's training form:

* :class:`ConditionedMLP` is E_c, S and C: an MLP whose first Linear reads ``[Φ, parts...]``.
  Φ (the image feature) never changes within an image, so the export rewrite
  ``export/rewrites/hkmr_feature_split.py`` splits that Linear and projects Φ once per module;
  :meth:`ConditionedMLP.prepare` is the hook for it (here it passes Φ through).
* :class:`JointHeads` is one pass direction of a chain: per-joint Linear heads ``f_i`` (or
  ``b_i``), proximal -> distal (backward: distal -> proximal), each reading ``[ψ, Δ_{i-1}, ...,
  Δ_0]`` (most recent first, Eq. 1). Being linear, one pass is an affine map of ψ, which
  ``export/rewrites/hkmr_head_fold.py`` folds into one matrix.
* :class:`ChainRegressor` is Q_c: embed, then ``inner_passes`` passes alternating forward and
  backward, each adding its residuals to the chain's axis-angle pose and re-embedding.
* :class:`HkmrRegressor` runs T outer steps: root chain, the five child chains on the current
  root pose, β from S, the camera from C.

Weights are shared across inner passes and outer steps (one Q_c per chain, §1.4). The loops have
fixed counts, so export unrolls them into a static graph.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hmrt.train.models.danet.regressor import mean_pose_matrices
from hmrt.train.models.hkmr import chains as C
from hmrt.train.models.hkmr.config import HkmrConfig
from hmrt.train.rotations import matrix_to_axis_angle


class ConditionedMLP(nn.Module):
    """``MLP([feature, *parts])``: ``first`` Linear + ReLU (+ Dropout), ``rest``, optional output.

    ``widths``: hidden layer widths (each followed by ReLU and Dropout); ``out_features``: a last
    Linear without activation (S, C), or None (E_c ends on its ReLU). Callers run
    :meth:`prepare` once per image and pass its result to every :meth:`forward`.
    """

    def __init__(
        self,
        feature_dim: int,
        cond_dim: int,
        widths: tuple[int, ...],
        out_features: int | None = None,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.feature_dim, self.cond_dim = feature_dim, cond_dim
        self.first = nn.Linear(feature_dim + cond_dim, widths[0])
        layers: list[nn.Module] = [nn.ReLU(inplace=True)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        for cin, cout in itertools.pairwise(widths):
            layers += [nn.Linear(cin, cout), nn.ReLU(inplace=True)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        if out_features is not None:
            layers.append(nn.Linear(widths[-1], out_features))
        self.rest = nn.Sequential(*layers)

    def prepare(self, feature: Tensor) -> Tensor:
        """Per-image work shared by every call: none in the training form (Φ itself)."""
        return feature

    def forward(self, prepared: Tensor, parts: list[Tensor]) -> Tensor:
        return self.rest(self.first(torch.cat([prepared, *parts], dim=1)))


class JointHeads(nn.Module):
    """One pass direction of a chain: ψ ``(N, d)`` -> residuals ``(N, 3K)`` in chain order.

    ``heads[p]`` is the head of the p-th joint *in pass order* (forward: chain joint p;
    backward: chain joint K-1-p). Head p reads ``[ψ, Δ_{p-1}, ..., Δ_0]`` (``hierarchy="all"``,
    width ``d + 3 max(p, 1)``) or ``[ψ, Δ_{p-1}]`` (``"previous"``, width ``d + 3``); the first
    head's ``[ψ, 0]`` is computed as its ψ columns alone (the zero block adds nothing, and no
    batch-sized zeros enter the graph).
    """

    def __init__(
        self, embed_dim: int, num_joints: int, backward: bool, hierarchy: str, gain: float
    ):
        super().__init__()
        self.embed_dim, self.num_joints = embed_dim, num_joints
        self.backward, self.hierarchy = backward, hierarchy
        widths = [3 * max(p, 1) if hierarchy == "all" else 3 for p in range(num_joints)]
        self.heads = nn.ModuleList(nn.Linear(embed_dim + w, 3) for w in widths)
        for head in self.heads:
            nn.init.xavier_uniform_(head.weight, gain=gain)
            nn.init.zeros_(head.bias)

    def forward(self, psi: Tensor) -> Tensor:
        first = self.heads[0]
        deltas = [F.linear(psi, first.weight[:, : self.embed_dim], first.bias)]
        for head in self.heads[1:]:
            previous = deltas[::-1] if self.hierarchy == "all" else deltas[-1:]
            deltas.append(head(torch.cat([psi, *previous], dim=1)))
        if self.backward:
            deltas = deltas[::-1]
        return torch.cat(deltas, dim=1)


class ChainRegressor(nn.Module):
    """Q_c: ``embed`` (E_c) and the forward / backward :class:`JointHeads` of one chain.

    ``forward(prepared, beta, theta, root)``: ψ = E_c([Φ, β, θ_root, θ_c]); then for each of
    ``passes`` passes (even: forward heads, odd: backward heads, or all forward) θ_c += Δ and
    ψ is re-embedded with the updated θ_c (not after the last pass, whose ψ nothing reads).
    """

    def __init__(self, feature_dim: int, num_joints: int, is_root: bool, config: HkmrConfig):
        super().__init__()
        c = config
        self.passes = c.inner_passes
        cond = C.NUM_BETAS + (0 if is_root else 3 * len(C.CHAINS[0][1])) + 3 * num_joints
        widths = (c.embed_dim,) * c.embed_layers
        self.embed = ConditionedMLP(feature_dim, cond, widths, None, c.dropout)
        args = (c.embed_dim, num_joints)
        self.forward_heads = JointHeads(*args, False, c.joint_hierarchy, c.head_init_gain)
        self.backward_heads = (
            JointHeads(*args, True, c.joint_hierarchy, c.head_init_gain)
            if c.pass_order == "forward_backward" and c.inner_passes > 1
            else None
        )

    def forward(
        self, prepared: Tensor, beta: Tensor, theta: Tensor, root: Tensor | None = None
    ) -> Tensor:
        cond = [beta] if root is None else [beta, root]
        psi = self.embed(prepared, [*cond, theta])
        for p in range(self.passes):
            backward = p % 2 == 1 and self.backward_heads is not None
            heads = self.backward_heads if backward else self.forward_heads
            theta = theta + heads(psi)
            if p + 1 < self.passes:
                psi = self.embed(prepared, [*cond, theta])
        return theta


def mean_pose_axis_angle(kind: str = "apose") -> Tensor:
    """``(24, 3)`` Θ⁰ in SMPL order: hmrt's mean pose (``mean_pose_matrices``) as axis-angle."""
    return matrix_to_axis_angle(mean_pose_matrices(kind).double()).float()


class HkmrRegressor(nn.Module):
    """Φ ``(N, F)`` -> per outer step ``(pose (N,24,3) SMPL order, betas (N,10), cam (N,3))``.

    Each outer step t (§1.5): the root chain from (Φ, β^{t-1}, θ_root^{t-1}); each child chain
    from (Φ, β^{t-1}, θ_c^{t-1}, θ_root^t); ``β^t = β^{t-1} + S([Φ, β^{t-1}, Θ^t])``;
    ``cam^t = mean_cam + C([Φ, Θ^t, β^t])``, Θ^t in chain order (the paper's concatenation).
    Poses are absolute (mean + accumulated residuals), additive in axis-angle space.
    """

    def __init__(self, feature_dim: int, config: HkmrConfig):
        super().__init__()
        c = config
        self.outer_steps = c.outer_steps
        self.residual_shape = c.shape_update == "residual"
        self.chains = nn.ModuleDict(
            (name, ChainRegressor(feature_dim, len(joints), name == C.ROOT, c))
            for name, joints in C.CHAINS
        )
        pose_dim = 3 * C.NUM_JOINTS
        cond = C.NUM_BETAS + pose_dim
        self.shape = ConditionedMLP(feature_dim, cond, (c.shape_hidden,), C.NUM_BETAS, c.dropout)
        self.camera = ConditionedMLP(feature_dim, cond, (c.cam_hidden,), 3, c.dropout)
        for net in (self.shape, self.camera):
            nn.init.xavier_uniform_(net.rest[-1].weight, gain=c.head_init_gain)
            nn.init.zeros_(net.rest[-1].bias)
        # Config-derived constants: not state.
        mean = mean_pose_axis_angle(c.mean_pose)[torch.from_numpy(C.CHAIN_ORDER)]
        self.register_buffer("mean_pose", mean.reshape(1, pose_dim), persistent=False)
        self.register_buffer("mean_betas", torch.zeros(1, C.NUM_BETAS), persistent=False)
        self.register_buffer(
            "mean_cam", torch.tensor([c.mean_cam], dtype=torch.float32), persistent=False
        )
        self.register_buffer(
            "smpl_from_chain", torch.from_numpy(C.SMPL_FROM_CHAIN), persistent=False
        )
        self.slices = C.chain_slices()

    def to_smpl_order(self, pose_chain: Tensor) -> Tensor:
        """Chain-order ``(N, 72)`` -> SMPL-order ``(N, 24, 3)`` (one constant Gather)."""
        return pose_chain.reshape(-1, C.NUM_JOINTS, 3).index_select(1, self.smpl_from_chain)

    def forward(self, feature: Tensor) -> list[tuple[Tensor, Tensor, Tensor]]:
        n = feature.shape[0]
        prepared = {name: chain.embed.prepare(feature) for name, chain in self.chains.items()}
        shape_in, cam_in = self.shape.prepare(feature), self.camera.prepare(feature)
        theta = {name: self.mean_pose[:, s].expand(n, -1) for name, s in self.slices.items()}
        beta = self.mean_betas.expand(n, -1)
        steps = []
        for _ in range(self.outer_steps):
            root = self.chains[C.ROOT](prepared[C.ROOT], beta, theta[C.ROOT])
            new = {C.ROOT: root}
            for name, chain in self.chains.items():
                if name != C.ROOT:
                    new[name] = chain(prepared[name], beta, theta[name], root)
            theta = new
            pose = torch.cat([theta[name] for name in C.CHAIN_NAMES], dim=1)
            delta = self.shape(shape_in, [beta, pose])
            beta = beta + delta if self.residual_shape else delta
            cam = self.mean_cam + self.camera(cam_in, [pose, beta])
            steps.append((self.to_smpl_order(pose), beta, cam))
        return steps
