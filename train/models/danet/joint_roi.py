"""Joint-centric RoI parameters: one affine ``theta`` per joint from the soft-argmax centres.

This is the official code's rule (``IUV_Estimator.affine_para``), not the paper's Eq. 2, because
the released weights and the learned per-joint ratios belong to it (seed-danet.md §1.4, §5.3):

1. ``scale_box`` = half the larger side of the joints' bounding box (normalised units);
2. root: ``s_0 = scale_box``; joint k: ``s_k = max(|c_child - c_k|, |c_parent - c_k|)``;
3. ``s_k <- s_k * relu(ratio_k) + relu(offset_k)`` (buffers from ``learned_ratio.pkl``);
4. training only: ``s_k *= 1 + j * (U - 0.5)`` with j = 0.2;
5. hidden joint (k != 0, centre not on one of its own parts in the cleaned Index map):
   ``s_k = 0.8 * scale_box`` (also at inference);
6. training only: the jitter of step 4 again (the official code applies it twice);
7. ``theta_k = [[s_k, 0, cx_k], [0, s_k, cy_k]]``, built with stack (no in-place writes).

Centres and scales carry no gradient (the official code detaches them).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from hmrt.train.models.danet import tables
from hmrt.train.models.layers.precision import Fp32Module


class JointRoITheta(Fp32Module):
    """``(centres (N,24,2), index_onehot (N,25,H,W)) -> theta (N,24,2,3)``; an FP32 island."""

    def __init__(
        self,
        map_size: tuple[int, int],
        hidden_threshold: float = 0.5,
        hidden_scale: float = 0.8,
        scale_jitter: float = 0.2,
    ):
        super().__init__()
        k = tables.NUM_JOINTS
        self.num_joints = k
        self.map_size = (int(map_size[0]), int(map_size[1]))
        self.hidden_threshold = float(hidden_threshold)
        self.hidden_scale = float(hidden_scale)
        self.scale_jitter = float(scale_jitter)
        self.register_buffer("learned_ratio", torch.tensor(tables.LEARNED_RATIO))
        self.register_buffer("learned_offset", torch.tensor(tables.LEARNED_OFFSET))
        self.register_buffer("parent_index", torch.tensor(tables.PARENTS), persistent=False)
        self.register_buffer("child_index", torch.tensor(tables.CHILDREN), persistent=False)
        own = torch.from_numpy(tables.own_part_matrix())
        self.register_buffer("own_parts", own[:, :, None, None], persistent=False)  # 1x1 conv
        self.register_buffer("not_root", (torch.arange(k) > 0)[None], persistent=False)

    def hidden(self, centres: Tensor, index_onehot: Tensor) -> Tensor:
        """``(N, 24)`` bool: the joint's centre does not lie on one of its own parts.

        The Index map is one-hot, so the official "max over own parts" equals this fixed
        1x1 convolution (a sum); one GridSample then reads every joint's map at its centre.
        """
        h, w = self.map_size
        score_maps = F.conv2d(index_onehot, self.own_parts).reshape(-1, 1, h, w)
        points = centres.reshape(-1, 1, 1, 2)
        score = F.grid_sample(score_maps, points, mode="bilinear", align_corners=True)
        return score.reshape(-1, self.num_joints) < self.hidden_threshold

    def _jitter(self, scale: Tensor) -> Tensor:
        if not self.training or self.scale_jitter <= 0:
            return scale
        return scale * (1.0 + self.scale_jitter * (torch.rand_like(scale) - 0.5))

    def forward(self, centres: Tensor, index_onehot: Tensor) -> Tensor:
        c = centres.detach()
        extent = c.amax(dim=1) - c.amin(dim=1)  # (N, 2)
        scale_box = extent.amax(dim=1, keepdim=True) / 2.0  # (N, 1)
        to_child = c.index_select(1, self.child_index) - c
        to_parent = c.index_select(1, self.parent_index) - c
        bone = torch.maximum(
            (to_child * to_child).sum(-1).sqrt(), (to_parent * to_parent).sum(-1).sqrt()
        )
        scale = torch.cat([scale_box, bone[:, 1:]], dim=1)
        scale = scale * F.relu(self.learned_ratio) + F.relu(self.learned_offset)
        scale = self._jitter(scale)
        hidden = self.hidden(c, index_onehot.detach()) & self.not_root
        scale = torch.where(hidden, self.hidden_scale * scale_box, scale)
        scale = self._jitter(scale)
        zero = torch.zeros_like(scale)
        theta = torch.stack([scale, zero, c[..., 0], zero, scale, c[..., 1]], dim=-1)
        return theta.reshape(-1, self.num_joints, 2, 3)
