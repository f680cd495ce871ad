"""BoBW's learned IK (seed-bobw.md §1.4 b, c): joint inpaint-and-refine MLP, then GIK-Net.

Two feed-forward MLPs in the layout of Martinez et al.'s 3D-pose baseline (ref. [27]), so the
IK needs no solver and exports as Gemm/BatchNormalization/Relu (BN folds into the Gemm in a
TensorRT build; dropout is gone in eval):

* :class:`JointInpaint` ``(J_initial (N,14,3), visible (N,14)) -> J_refine (N,14,3)``, all
  root-relative metres in the camera frame. Invisible joints are zeroed at the input.
* :class:`GIKNet` ``J_refine -> (pose_aa (N,72) axis-angle, betas (N,10))``; joint 0 of the pose
  is the camera-frame root orientation.
* :class:`BoBWIK` holds both (``.inpaint``, ``.gik``).

Standardisation (Martinez standardises inputs and outputs): both nets see
``(J - joint_mean) / joint_std`` per joint and coordinate, and the inpaint net's correction is
scaled back by ``joint_std``. The statistics are persistent buffers (they travel with
``state_dict``) measured by :meth:`BoBWIK.set_statistics` from the IK training source
(``hmrt.train.bobw.ik_data``); ``statistics_set`` records that this happened. A freshly built
``BoBWIK`` has neutral placeholders (mean 0, std 0.25 m) until then.

Decisions (docs/models/bobw.md lists them with the others):

* The inpaint output is a **residual on the mean-filled input**:
  ``J_refine = vis * J_initial + (1 - vis) * joint_mean + joint_std * MLP(...)`` with the MLP's
  last layer zero at init. Visible joints are already within the detector's noise (centimetres)
  of the answer; a residual keeps them unless the net has a reason to move them, and the
  dropout-0.5 features perturb only the correction, not the whole position. Missing joints
  start at the sampler's mean joint, not at the origin.
* GIK-Net's output is **direct**, last layer zero-weighted with its bias = the statistics' pose
  (body joints: the sampler's mean axis-angle; root: the most likely camera-frame orientation,
  upright and facing the camera at the mean elevation) and betas 0 (the engine draws betas
  around 0). So training starts from a sensible mean body instead of random rotations, whose
  meshes are spaghetti and whose vertex loss gives poor gradients (HMR's mean-parameter
  initialisation, without the iterative loop).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from hmrt.train.models.bobw.config import BoBWConfig

N_JOINTS = 14
N_POSE = 72
N_BETAS = 10
DEFAULT_JOINT_STD = 0.25
"""Placeholder per-coordinate std (metres) before :meth:`BoBWIK.set_statistics`."""


def _block(in_dim: int, out_dim: int, dropout: float) -> nn.Sequential:
    """``Linear -> BatchNorm1d -> ReLU -> Dropout`` with He (fan-in) init, as Martinez."""
    linear = nn.Linear(in_dim, out_dim)
    nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
    nn.init.zeros_(linear.bias)
    return nn.Sequential(linear, nn.BatchNorm1d(out_dim), nn.ReLU(), nn.Dropout(dropout))


class _ResidualStage(nn.Module):
    """Two ``Linear -> BN -> ReLU -> Dropout`` blocks plus a skip (no ReLU after the add)."""

    def __init__(self, hidden: int, dropout: float):
        super().__init__()
        self.body = nn.Sequential(_block(hidden, hidden, dropout), _block(hidden, hidden, dropout))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class MartinezMLP(nn.Module):
    """Martinez et al.'s baseline MLP: an input block, ``stages`` residual stages of two
    blocks, and an output ``Linear`` (``2 * stages + 2`` linear layers).

    ``forward(x (N, in_dim)) -> (N, out_dim)``. 42 -> 42 at width 256 with 2 stages (the
    paper's "six linear layers with 256 output features") has 287,530 parameters.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: int, stages: int, dropout: float):
        super().__init__()
        self.inp = _block(in_dim, hidden, dropout)
        self.stages = nn.Sequential(*[_ResidualStage(hidden, dropout) for _ in range(stages)])
        self.out = nn.Linear(hidden, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.stages(self.inp(x)))


class _Standardised(nn.Module):
    """Holds the joint statistics as persistent buffers: ``joint_mean``/``joint_std`` (14, 3)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("joint_mean", torch.zeros(N_JOINTS, 3))
        self.register_buffer("joint_std", torch.full((N_JOINTS, 3), DEFAULT_JOINT_STD))

    def standardise(self, joints: Tensor) -> Tensor:
        return (joints - self.joint_mean) / self.joint_std


class JointInpaint(_Standardised):
    """Joint inpaint-and-refine net: ``forward(j_initial (N,14,3), visible (N,14)) -> j_refine``.

    Input: the standardised joints with invisible joints zeroed (``visible`` is 1/0, any float
    or bool dtype), flattened to 42, plus the 14 flags when ``config.ik_vis_input`` (56).
    Output: a residual on the mean-filled input (module docstring), root-relative metres.
    """

    def __init__(self, config: BoBWConfig):
        super().__init__()
        self.vis_input = bool(config.ik_vis_input)
        in_dim = N_JOINTS * 3 + (N_JOINTS if self.vis_input else 0)
        self.mlp = MartinezMLP(
            in_dim, N_JOINTS * 3, config.ik_hidden, config.ik_stages, config.ik_dropout
        )
        nn.init.zeros_(self.mlp.out.weight)
        nn.init.zeros_(self.mlp.out.bias)

    def forward(self, j_initial: Tensor, visible: Tensor) -> Tensor:
        vis = visible.to(j_initial.dtype)
        x = self.standardise(j_initial) * vis.unsqueeze(-1)  # invisible joints: 0 (= the mean)
        features = x.flatten(1)
        if self.vis_input:
            features = torch.cat([features, vis], dim=1)
        delta = self.mlp(features).reshape(-1, N_JOINTS, 3)
        return self.joint_mean + (x + delta) * self.joint_std


class GIKNet(_Standardised):
    """GIK-Net: ``forward(j_refine (N,14,3)) -> (pose_aa (N,72), betas (N,10))``.

    Martinez layout (``gik_hidden`` wide, ``gik_stages`` stages, ``ik_dropout``) from the 42
    standardised joints to 82 numbers; direct output, mean-pose initialisation (module
    docstring). ``pose_aa`` is SMPL's axis-angle, joint 0 the camera-frame root orientation.
    """

    def __init__(self, config: BoBWConfig):
        super().__init__()
        self.mlp = MartinezMLP(
            N_JOINTS * 3, N_POSE + N_BETAS, config.gik_hidden, config.gik_stages, config.ik_dropout
        )
        nn.init.zeros_(self.mlp.out.weight)
        nn.init.zeros_(self.mlp.out.bias)

    def forward(self, j_refine: Tensor) -> tuple[Tensor, Tensor]:
        out = self.mlp(self.standardise(j_refine).flatten(1))
        return out[:, :N_POSE], out[:, N_POSE:]


class BoBWIK(nn.Module):
    """BoBW's IK module: ``forward(j_initial (N,14,3), visible (N,14)) -> dict`` with
    ``j_refine (N,14,3)``, ``pose_aa (N,72)``, ``betas (N,10)``.

    ``detach_refine=True`` feeds GIK-Net a detached ``J_refine`` in training, so the inpaint
    net learns from its joint loss alone (hmrt.train.bobw.ik_fit explains why); export and eval
    are unaffected.
    """

    def __init__(self, config: BoBWConfig, detach_refine: bool = True):
        super().__init__()
        self.inpaint = JointInpaint(config)
        self.gik = GIKNet(config)
        self.detach_refine = detach_refine
        self.register_buffer("statistics_set", torch.zeros(()))

    @property
    def has_statistics(self) -> bool:
        """Whether :meth:`set_statistics` ran (or a state dict that had them was loaded)."""
        return bool(self.statistics_set.item() > 0)

    @torch.no_grad()
    def set_statistics(self, joint_mean: Tensor, joint_std: Tensor, pose_init: Tensor) -> None:
        """Store the training source's joint statistics (14, 3) in both nets and set GIK-Net's
        output bias to ``pose_init`` (72,) axis-angle and zero betas. Call once, before
        training: it changes what a trained net computes."""
        for net in (self.inpaint, self.gik):
            net.joint_mean.copy_(joint_mean.reshape(N_JOINTS, 3))
            net.joint_std.copy_(joint_std.reshape(N_JOINTS, 3))
        bias = torch.zeros(N_POSE + N_BETAS)
        bias[:N_POSE] = pose_init.reshape(N_POSE)
        self.gik.mlp.out.bias.copy_(bias)
        self.statistics_set.fill_(1.0)

    def forward(self, j_initial: Tensor, visible: Tensor) -> dict[str, Tensor]:
        j_refine = self.inpaint(j_initial, visible)
        gik_in = j_refine.detach() if (self.detach_refine and self.training) else j_refine
        pose_aa, betas = self.gik(gik_in)
        return {"j_refine": j_refine, "pose_aa": pose_aa, "betas": betas}


def parameter_count(module: nn.Module) -> int:
    """Trainable parameters (BatchNorm affine included, running statistics not)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
