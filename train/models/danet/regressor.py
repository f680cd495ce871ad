"""DaNet stage 2: IUV maps -> camera, shape and 24 joint rotations (official ``DecomposedPredictor``).

Global stream: ``body_net`` = 1x1 conv 75 -> w + BN + ReLU + ResNet (13 outputs) + mean
``(cam, betas)``. Local streams: the 24 cleaned partial maps batch-folded to ``(N*24, 21, R, R)``
through a shared trunk (``limb_net``), unfolded to ``(N, 24*C, r, r)`` and through per-joint
residual blocks (``limb_reslayer``, groups=24) to ``X (N, 24, F)``. Position-aided refinement
(3 steps, graph convs): ``Y = G(A_r2p, X)``; ``Y^ = Y + GCN(A_rf, Y)``;
``X^ = G(A_p2r, Y^)``. ``pose_regressors[1]`` maps ``X^`` to rotations (+ mean pose);
``pose_regressors[0]`` (on X) and ``coord_regressors`` (on Y, Y^) supervise training only.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hmrt.train.models.backbones.mobilenet import ConvBNAct, InvertedResidual
from hmrt.train.models.backbones.resnet import BasicBlock, ResNet, init_conv_bn, make_res_layer
from hmrt.train.models.danet import tables
from hmrt.train.models.danet.config import DaNetConfig
from hmrt.train.models.danet.iuv import NUM_IUV, PARTIAL_CHANNELS
from hmrt.train.models.layers.graph_conv import GCN
from hmrt.train.models.layers.precision import Fp32Module
from hmrt.train.rotations import axis_angle_to_matrix, matrix_to_rot6d, rot6d_to_matrix

K = tables.NUM_JOINTS
ROT_DIMS = {"6d": 6, "9d": 9}


def mean_pose_matrices(kind: str = "apose") -> Tensor:
    """``(24, 3, 3)`` initial pose: upright and facing the camera, T- or A-pose arms.

    SPIN's ``smpl_mean_params.npz`` (the official initial pose) is SMPL-derived data and is not
    shipped. Instead: global orientation = 180 degrees about X (the SMPL frame is Y-up, the camera
    frame Y-down: docs/DEVELOPING.md), every other joint identity (``tpose``), or with the
    shoulders lowered 45 degrees about Z (``apose``, closer to typical poses).
    """
    aa = torch.zeros(K, 3, dtype=torch.float64)
    aa[0, 0] = math.pi
    if kind == "apose":
        aa[16, 2] = -math.pi / 4  # left arm (+X) down
        aa[17, 2] = math.pi / 4  # right arm (-X) down
    return axis_angle_to_matrix(aa).float()


class RotationDecoder(Fp32Module):
    """Raw per-joint outputs ``(N, 24*d)`` + mean pose -> rotation matrices ``(N, 24, 3, 3)``.

    ``6d``: Gram-Schmidt (``hmrt.train.rotations.rot6d_to_matrix``, SPIN/DaNet layout: the 6
    numbers are a row-major 3x2 matrix whose columns are a1, a2). ``9d``: the raw matrices, not
    orthonormalised (the paper's main model; L_orth pulls them to SO(3)). The mean is added
    before the conversion, as in the official code. An FP32 island.
    """

    def __init__(self, rot_repr: str = "6d", mean_pose: str = "apose"):
        super().__init__()
        self.rot_repr = rot_repr
        mats = mean_pose_matrices(mean_pose)
        mean = matrix_to_rot6d(mats) if rot_repr == "6d" else mats.reshape(K, 9)
        self.register_buffer("mean_pose", mean.reshape(1, -1).contiguous())

    def forward(self, raw: Tensor) -> Tensor:
        pose = raw + self.mean_pose
        if self.rot_repr == "6d":
            return rot6d_to_matrix(pose.reshape(-1, K, 6))
        return pose.reshape(-1, K, 3, 3)


def per_joint_head(features: int, outputs: int) -> nn.Sequential:
    """Per-joint linear map ``(N, 24*features, 1, 1) -> (N, 24*outputs, 1, 1)`` (grouped 1x1).

    Index 0 is a placeholder for the official ``AdaptiveAvgPool2d(1)`` (a no-op on 1x1 input),
    so the conv keeps its official key ``<name>.1.weight``.
    """
    return nn.Sequential(nn.Identity(), nn.Conv2d(K * features, K * outputs, 1, groups=K))


class MobileLimbTrunk(nn.Module):
    """Edge local trunk: 3x3/2 conv then two stride-2 inverted residuals (R -> ~R/8)."""

    def __init__(self, width: int):
        super().__init__()
        self.stem = ConvBNAct(width, 2 * width, stride=2)
        self.block1 = InvertedResidual(2 * width, 3 * width, stride=2, expand=2)
        self.block2 = InvertedResidual(3 * width, 4 * width, stride=2, expand=2)
        self.out_channels = 4 * width
        init_conv_bn(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.block2(self.block1(self.stem(x)))


def _trunk_out_size(net: str, size: int) -> int:
    """Spatial side after the local trunk (static, for constant reshapes)."""
    halve = lambda s: (s + 1) // 2  # noqa: E731  (3x3/2 pad 1 convs and pools)
    steps = 4 if net == "resnet18" else 3  # conv1 + maxpool + layer2 + layer3 | 3 strided convs
    for _ in range(steps):
        size = halve(size)
    return size


def _in_block(cin: int, width: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]


class LimbResLayers(nn.Module):
    """Per-joint residual stage: ``blocks`` BasicBlocks, 24 independent copies (groups=24)."""

    def __init__(self, inplanes: int, planes: int, blocks: int):
        super().__init__()
        self.layer4 = make_res_layer(BasicBlock, inplanes, planes, blocks, stride=2, parallel=K)
        self.avg_pooling = nn.AdaptiveAvgPool2d(1)
        init_conv_bn(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.avg_pooling(self.layer4(x))


class DecomposedRegressor(nn.Module):
    """Stage 2 of DaNet; see the module docstring. Names follow the official module."""

    def __init__(self, config: DaNetConfig):
        super().__init__()
        c = config
        self.roi_size = c.roi_size
        self.rot_feat_dim = c.rot_feat_dim
        self.rot_dim = ROT_DIMS[c.rot_repr]
        # Global stream.
        if c.global_net == "resnet18":
            global_net = ResNet(18, in_channels=c.global_width, num_classes=13)
        else:
            w = c.global_width
            global_net = ResNet(
                18, c.global_width, 13, blocks=(1, 1, 1, 1), widths=(w, 2 * w, 3 * w, 4 * w),
                stem="3x3",
            )  # fmt: skip
        nn.init.xavier_uniform_(global_net.fc.weight, gain=0.01)
        nn.init.zeros_(global_net.fc.bias)
        self.body_net = nn.Sequential(*_in_block(3 * NUM_IUV, c.global_width), global_net)
        init_conv_bn(self.body_net[:2])
        mean_cam_shape = torch.zeros(1, 13)
        mean_cam_shape[0, :3] = torch.tensor(c.mean_cam)
        self.register_buffer("mean_cam_shape", mean_cam_shape)
        # Local streams.
        if c.local_net == "resnet18":
            trunk: nn.Module = ResNet(18, in_channels=c.local_width, num_stages=3)
        else:
            trunk = MobileLimbTrunk(c.local_width)
        self.limb_net = nn.Sequential(*_in_block(3 * PARTIAL_CHANNELS, c.local_width), trunk)
        init_conv_bn(self.limb_net[:2])
        self.trunk_channels = trunk.out_channels
        self.trunk_size = _trunk_out_size(c.local_net, c.roi_size)
        self.limb_reslayer = LimbResLayers(self.trunk_channels, c.rot_feat_dim, c.local_blocks)
        # Refinement.
        f = c.rot_feat_dim
        self.register_buffer("r2p_A", torch.from_numpy(tables.r2p_adjacency()), persistent=False)
        self.register_buffer("p2r_A", torch.from_numpy(tables.p2r_adjacency()), persistent=False)
        self.register_buffer("A_mask", torch.from_numpy(tables.refine_mask()), persistent=False)
        self.register_buffer("I_n", torch.eye(K), persistent=False)
        self.edge_importance = nn.Parameter(torch.ones(1, K, K))
        self.r2p_gcn = GCN(f, f, f, layers=1, nodes=K)
        self.refine_gcn = GCN(f, c.gcn_hidden, f, layers=c.gcn_layers, nodes=K)
        self.p2r_gcn = GCN(f, f, f, layers=1, nodes=K)
        # Heads: [0] on X and coord_regressors are training-only supervision.
        self.pose_regressors = nn.ModuleList(per_joint_head(f, self.rot_dim) for _ in range(2))
        self.coord_regressors = nn.ModuleList(per_joint_head(f, 3) for _ in range(2))
        for head in (*self.pose_regressors, *self.coord_regressors):
            nn.init.xavier_uniform_(head[1].weight, gain=0.01)
            nn.init.zeros_(head[1].bias)
        self.rotation = RotationDecoder(c.rot_repr, c.mean_pose)

    def refine_adjacency(self) -> Tensor:
        """``A_rf = D^-1/2 (I + A_mask * relu(E)) D^-1/2`` with column-sum degrees (official).

        Depends only on the learned ``edge_importance``: constant-folded at export. The identity
        keeps every degree >= 1, so no guard is needed.
        """
        a = self.I_n + self.A_mask * F.relu(self.edge_importance[0])
        d = torch.rsqrt(a.sum(dim=0))
        return d.unsqueeze(1) * a * d.unsqueeze(0)

    def _node_head(self, head: nn.Module, nodes: Tensor) -> Tensor:
        return head(nodes.reshape(-1, K * self.rot_feat_dim, 1, 1))

    def forward(self, global_iuv: Tensor, partial_iuv: Tensor) -> dict[str, Tensor | list]:
        """``global_iuv (N, 75, H, W)``, ``partial_iuv (N, 24, 21, R, R)`` -> parameters.

        Eval: ``cam (N,3)``, ``betas (N,10)``, ``rotmats (N,24,3,3)``. Training adds
        ``refine_rotmats`` [from X] and ``refine_positions`` [from Y, from Y^] (lists).
        """
        r, s = self.roi_size, self.trunk_size
        cam_shape = self.body_net(global_iuv) + self.mean_cam_shape
        trunk = self.limb_net(partial_iuv.reshape(-1, 3 * PARTIAL_CHANNELS, r, r))
        x = self.limb_reslayer(trunk.reshape(-1, K * self.trunk_channels, s, s))
        x = x.reshape(-1, K, self.rot_feat_dim)
        y = self.r2p_gcn(x, self.r2p_A)
        y_hat = y + self.refine_gcn(y, self.refine_adjacency())
        x_hat = self.p2r_gcn(y_hat, self.p2r_A)
        rotmats = self.rotation(self._node_head(self.pose_regressors[1], x_hat).flatten(1))
        out: dict[str, Tensor | list] = {
            "cam": cam_shape[:, :3],
            "betas": cam_shape[:, 3:13],
            "rotmats": rotmats,
        }
        if self.training:
            rot0 = self.rotation(self._node_head(self.pose_regressors[0], x).flatten(1))
            out["refine_rotmats"] = [rot0]
            out["refine_positions"] = [
                self._node_head(head, feats).reshape(-1, K, 3)
                for head, feats in zip(self.coord_regressors, (y, y_hat))
            ]
        return out
