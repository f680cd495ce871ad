"""PoSh: predicted 3D joints + pooled image features -> 24 rotations, 10 betas and a camera.

The paper (Sect. 4) fixes only the inputs (the pose network's 3D joints and "high-level image
features"), the outputs (SMPL beta and theta as 24 rotation matrices) and that it is shallow and
trained end to end. The layers here are hmrt's (shared/research/seed-hemlets-posh.md §1.10): an
FC block, residual FC blocks and one linear layer to ``24*9 + 10 + 3`` numbers, plus mean pose
and mean camera offsets. The camera is an hmrt addition: the model contract needs a
weak-perspective ``(s, tx, ty)``. The raw 3x3 matrices are projected onto SO(3) by Gram-Schmidt
on their first two columns (exportable; no SVD in ONNX/TensorRT).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from hmrt.train.models.danet.regressor import mean_pose_matrices
from hmrt.train.models.layers.precision import Fp32Module
from hmrt.train.rotations import matrix_to_rot6d, rot6d_to_matrix

NUM_BODY_JOINTS = 24
NUM_BETAS = 10
NUM_PARAMS = NUM_BODY_JOINTS * 9 + NUM_BETAS + 3


class FCBlock(nn.Sequential):
    """Linear + BatchNorm1d + ReLU."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__(
            nn.Linear(in_features, out_features),
            nn.BatchNorm1d(out_features),
            nn.ReLU(inplace=True),
        )


class FCResBlock(nn.Module):
    """Two Linear + BatchNorm1d layers with a residual, ReLU after the sum."""

    def __init__(self, features: int):
        super().__init__()
        self.block = nn.Sequential(
            nn.Linear(features, features),
            nn.BatchNorm1d(features),
            nn.ReLU(inplace=True),
            nn.Linear(features, features),
            nn.BatchNorm1d(features),
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(x + self.block(x))


def project_to_so3(matrices: Tensor) -> Tensor:
    """``(..., 3, 3)`` -> the rotation Gram-Schmidt makes of the first two columns (det +1).

    Chosen over SVD (CMR's projection; no ONNX/TensorRT op) and Newton-Schulz polar iterations
    (needs normalised inputs and a fixed iteration count, and keeps reflections): exact for any
    input, a proper rotation by construction, and plain Mul/Add/Sqrt ops in the graph. The
    third column gets no gradient through it; a loss on ``rotmats_raw`` supervises all nine.
    """
    return rot6d_to_matrix(matrix_to_rot6d(matrices))


class BodyParamDecoder(Fp32Module):
    """Raw regressor output ``(N, 229)`` + means -> raw and projected rotations, betas, camera.

    An FP32 island (normalisations inside the rotation projection). Layout of the raw vector:
    ``[24 x 9 row-major matrices | 10 betas | s, tx, ty]``; the mean pose (upright, facing the
    camera) and the mean camera are buffers added before the projection.
    """

    def __init__(
        self, mean_pose: str = "apose", mean_cam: tuple[float, float, float] = (0.9, 0, 0)
    ):
        super().__init__()
        mean = torch.zeros(1, NUM_PARAMS)
        mean[0, : NUM_BODY_JOINTS * 9] = mean_pose_matrices(mean_pose).reshape(-1)
        mean[0, -3:] = torch.tensor(mean_cam, dtype=torch.float32)
        # Derived from the config, so not part of the state dict.
        self.register_buffer("mean_params", mean, persistent=False)

    def forward(self, raw: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """-> ``rotmats_raw (N,24,3,3)``, ``rotmats (N,24,3,3)``, ``betas (N,10)``, ``cam (N,3)``."""
        params = raw + self.mean_params
        rotmats_raw = params[:, : NUM_BODY_JOINTS * 9].reshape(-1, NUM_BODY_JOINTS, 3, 3)
        betas = params[:, NUM_BODY_JOINTS * 9 : NUM_BODY_JOINTS * 9 + NUM_BETAS]
        cam = params[:, -3:]
        return rotmats_raw, project_to_so3(rotmats_raw), betas, cam


class PoSh(nn.Module):
    """Root-relative joints ``(N, 18, 3)`` + pooled features ``(N, C)`` -> body parameters.

    ``fc_in`` (FC block to ``hidden``), ``blocks`` (residual FC blocks), ``head`` (linear to the
    229 raw numbers, initialised near zero so an untrained model outputs the mean body), then
    :class:`BodyParamDecoder`.
    """

    def __init__(
        self,
        num_joints: int,
        feature_channels: int,
        hidden: int = 1024,
        blocks: int = 2,
        mean_pose: str = "apose",
        mean_cam: tuple[float, float, float] = (0.9, 0.0, 0.0),
    ):
        super().__init__()
        self.fc_in = FCBlock(num_joints * 3 + feature_channels, hidden)
        self.blocks = nn.Sequential(*[FCResBlock(hidden) for _ in range(blocks)])
        self.head = nn.Linear(hidden, NUM_PARAMS)
        nn.init.xavier_uniform_(self.head.weight, gain=0.01)
        nn.init.zeros_(self.head.bias)
        self.decode = BodyParamDecoder(mean_pose, mean_cam)

    def forward(self, joints: Tensor, features: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``joints (N, J, 3)`` normalised volume coordinates, ``features (N, C)``."""
        relative = (joints - joints[:, :1]).flatten(1)
        x = self.blocks(self.fc_in(torch.cat([relative, features], dim=1)))
        return self.decode(self.head(x))
