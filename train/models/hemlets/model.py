"""HEMlets PoSh (Zhou et al., "HEMlets PoSh: Learning Part-Centric Heatmap Triplets for 3D Human
Pose and Shape Estimation", TPAMI 2021).

Re-implemented from shared/research/seed-hemlets-posh.md and the structure of the official
inference code (redrock303/HEMlets ``inference/network.py``; nothing copied). The pose network
keeps the official attribute names, so the ``paper`` variant's state dict has the official
keys (``backbone.*``, ``conv_feature.*``, ``conv_FBI.*``, ``FBI_encoder.*``, ``conv_tail.*``,
``volume_reg.dis_map``); ``posh.*`` (the body regressor, never released) and ``body`` are hmrt's.
Decisions the paper and code leave open: docs/models/hemlets.md.

Eval outputs (``model.eval()``; the ONNX contract, DaNet's order): ``vertices (N,V,3)``,
``joints3d (N,24,3)`` (metres, root-relative), ``joints2d (N,24,2)`` (crop pixels),
``cam (N,3)``, ``rotmats (N,24,3,3)``, ``betas (N,10)``, then the contract's optional
``pose_joints (N,18,3)``: the pose network's own joints (``joints_vol`` below) as crop pixels
``x_px = (x + 0.5) * W``, ``y_px = (y + 0.5) * H`` and root-relative metres
``z_m = z * depth_range_m``, in the order of ``HEMLETS_JOINT_NAMES`` (joint set ``hemlets18``).
They do not depend on PoSh, so an import of the official pose network gives them at deployment.

Training outputs (``model.train()``): the eval keys plus (``h x w`` = ``config.feat_size``,
input / ``heatmap_stride``: 64x64 paper, 32x32 edge; joint order and parts in ``joints.py``):

===============  ============  ===================================================================
key              shape         meaning / supervision
===============  ============  ===================================================================
``heatmaps2d``   (N,18,h,w)    raw 2D joint heatmaps (channels 42..59 of ``conv_FBI``); L2D
``hemlets``      (N,42,h,w)    raw HEMlets, part-major: part k = channels 3k..3k+2 =
                               ``T^-1, T^0, T^+1`` (channels 0..41 of ``conv_FBI``); LHEM
``joints_vol``   (N,18,3)      soft-argmax joints in [-0.5, 0.5]: x, y over the crop
                               (``px = (x + 0.5) * W``), z over the volume's depth range
                               (``z_m = z * depth_range_m``, relative to the reference/root); L3D
``rotmats_raw``  (N,24,3,3)    PoSh rotations before the SO(3) projection (mean pose added)
===============  ============  ===================================================================
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hmrt.train.models.base import OUTPUT_NAMES, BodyHead, HmrModel, make_body_layer
from hmrt.train.models.hemlets.config import HemletsConfig
from hmrt.train.models.hemlets.joints import HEMLETS_JOINT_NAMES, NUM_JOINTS, NUM_PARTS
from hmrt.train.models.hemlets.network import UpsampleBranch, build_backbone, init_head
from hmrt.train.models.hemlets.posh import PoSh
from hmrt.train.models.layers.precision import Fp32Module
from hmrt.train.models.layers.soft_argmax import SoftArgmax3d
from hmrt.train.models.registry import register_model

POSE_NETWORK = ("backbone", "conv_feature", "conv_FBI", "FBI_encoder", "conv_tail", "volume_reg")
"""The official pose network's submodules (attribute names as in the official ``Network``)."""


class VolumeToCrop(Fp32Module):
    """Soft-argmax joints in [-0.5, 0.5] -> ``pose_joints``: crop pixels (x, y), metres (z).

    ``x_px = (x + 0.5) * W``, ``y_px = (y + 0.5) * H`` (the training targets' convention,
    ``hemlets_targets.py``), ``z_m = z * depth_range_m`` (root-relative depth as the network
    predicts it: the root's own z is trained towards 0, not forced). An FP32 island: it feeds a
    contract output directly, and crop pixels up to 256 keep only 1/8 px steps in FP16. No
    weights: the constants are non-persistent buffers, so the state dict (the official keys) is
    unchanged.
    """

    def __init__(self, input_size: tuple[int, int], depth_range_m: float):
        super().__init__()
        height, width = input_size
        scale = torch.tensor([float(width), float(height), float(depth_range_m)])
        offset = torch.tensor([0.5 * width, 0.5 * height, 0.0])
        self.register_buffer("scale", scale, persistent=False)
        self.register_buffer("offset", offset, persistent=False)

    def forward(self, joints_vol: Tensor) -> Tensor:
        return joints_vol * self.scale + self.offset


@register_model(
    "hemlets",
    config_cls=HemletsConfig,
    variants={"paper": HemletsConfig.paper, "edge": HemletsConfig.edge},
    summary="HEMlets PoSh: part-centric heatmap triplets -> 3D joint volumes -> SMPL regressor",
)
class Hemlets(HmrModel):
    """HEMlets PoSh; ``Hemlets(config, body=None)``, ``forward(image) -> dict`` (module docstring)."""

    output_names: ClassVar[tuple[str, ...]] = (*OUTPUT_NAMES, "pose_joints")
    pose_joint_set: ClassVar[str] = "hemlets18"
    """Name of the ``pose_joints`` joint set (ONNX metadata ``hmrt.pose_joints``)."""
    pose_joint_names: ClassVar[tuple[str, ...]] = HEMLETS_JOINT_NAMES
    """Names of the ``pose_joints`` joints, in output order (``hmrt.pose_joint_names``)."""

    def __init__(self, config: HemletsConfig, body: Any = None):
        super().__init__(config)
        c = config
        h, w = c.feat_size
        self.backbone = build_backbone(c)
        cin, branch, ups = self.backbone.out_channels, c.branch_channels, c.num_upsamples
        self.conv_feature = UpsampleBranch(cin, branch, c.high_channels, ups)
        self.conv_FBI = UpsampleBranch(cin, branch, c.heatmap_channels, ups)
        self.FBI_encoder = nn.Sequential(
            nn.Conv2d(c.heatmap_channels, c.encoder_channels, 3, 1, 1),
            nn.BatchNorm2d(c.encoder_channels),
            nn.ReLU(inplace=True),
        )
        # Concat order [image features | encoded heatmaps] is the official one.
        self.conv_tail = nn.Sequential(
            nn.Conv2d(c.high_channels + c.encoder_channels, c.tail_channels, 1),
            nn.BatchNorm2d(c.tail_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(c.tail_channels, NUM_JOINTS * c.depth_bins, 1),
        )
        self.volume_reg = SoftArgmax3d(NUM_JOINTS, c.depth_bins, h, w)
        self.joints_to_crop = VolumeToCrop(tuple(c.input_size), c.depth_range_m)
        init_head(self.conv_feature)
        init_head(self.conv_FBI, logits=self.conv_FBI.conv_tail)
        init_head(self.FBI_encoder)
        init_head(self.conv_tail, logits=self.conv_tail[3])
        pooled = c.high_channels if c.posh_feature == "high" else cin
        self.posh = PoSh(NUM_JOINTS, pooled, c.posh_hidden, c.posh_blocks, c.mean_pose, c.mean_cam)
        self.body = BodyHead(make_body_layer(body), c.input_size)

    @property
    def body_hash(self) -> str | None:
        """Hash of the body model the outputs use (from the body layer, when it has one)."""
        layer = self.body.layer
        value = getattr(layer, "hash", None) or getattr(layer, "body_hash", None)
        return None if value is None else str(value)

    def pose_network_parameters(self) -> int:
        """Parameters of the official pose network (everything but PoSh and the body head)."""
        return sum(p.numel() for n in POSE_NETWORK for p in getattr(self, n).parameters())

    def forward(self, image: Tensor) -> dict[str, Any]:
        feature = self.backbone(image)
        high = self.conv_feature(feature)
        fb_map = self.conv_FBI(feature)
        volume = self.conv_tail(torch.cat([high, self.FBI_encoder(fb_map)], dim=1))
        joints_vol = self.volume_reg(volume)
        pooled = F.adaptive_avg_pool2d(high if self.config.posh_feature == "high" else feature, 1)
        rotmats_raw, rotmats, betas, cam = self.posh(joints_vol, pooled.flatten(1))
        vertices, joints3d, joints2d = self.body(rotmats, betas, cam)
        out: dict[str, Any] = {
            "vertices": vertices,
            "joints3d": joints3d,
            "joints2d": joints2d,
            "cam": cam,
            "rotmats": rotmats,
            "betas": betas,
            "pose_joints": self.joints_to_crop(joints_vol),
        }
        if self.training:
            k = 3 * NUM_PARTS
            out.update(
                heatmaps2d=fb_map[:, k:],
                hemlets=fb_map[:, :k],
                joints_vol=joints_vol,
                rotmats_raw=rotmats_raw,
            )
        return out
