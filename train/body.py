"""``BodyLayer``: SMPL linear blend skinning in torch, exportable to ONNX with plain ops.

The torch twin of ``hmrt.runtime.body.BodyModel.forward``, used inside every model. Written for
deployment (shared/research/body-model-and-data.md §2.5):

* ``parents`` is a Python list, so forward kinematics unroll into a fixed chain of MatMuls;
* shape and pose bases are applied with ``matmul`` on pre-flattened bases (no Einsum), the joint
  regressor is folded into ``J_template``/``J_shapedirs`` (no per-call regression over all
  vertices), and 4x4 homogeneous matrices are never built (no Pad);
* no in-place ops or index assignment (no ScatterND);
* always FP32: autocast is disabled inside and inputs are cast; DESIGN.md keeps LBS out of
  FP16 (sums of weighted transforms and shape offsets), and this holds under AMP training too.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import Tensor, nn

from hmrt.runtime.body.model import BodyModel


class BodyLayer(nn.Module):
    """Pose a body model: ``forward(rotmats (N,J,3,3), betas (N,K)) -> (vertices, joints)``.

    ``body`` is a :class:`BodyModel`, a path to a body npz, or None for the bundled model.
    The arrays become non-persistent float32 buffers (they follow ``.to(device)`` but stay out
    of checkpoints, which record ``body_hash`` instead). ``betas`` may have fewer columns than
    the model provides; the first K shape components are used. Pose correctives are skipped
    when the model has none (the open model), keeping the graph small.
    """

    def __init__(self, body: BodyModel | str | os.PathLike | None = None):
        super().__init__()
        if not isinstance(body, BodyModel):
            body = BodyModel(body)
        n_verts, n_joints, n_betas = body.n_verts, body.n_joints, body.n_betas
        self.n_verts, self.n_joints, self.n_betas = n_verts, n_joints, n_betas
        self.parents: list[int] = list(body.parents)
        self.body_hash: str = body.hash

        def buffer(name: str, value) -> None:
            # a writable C-ordered copy: BodyModel arrays are read-only, some values transposed
            array = np.array(value, dtype=np.float32, order="C")
            self.register_buffer(name, torch.from_numpy(array), persistent=False)

        # Geometry is kept component-major, (3, V) per sample, so the per-vertex 3x3 products of
        # skinning run on contiguous rows instead of stride-3 views (measurably faster on CPU),
        # and every basis is pre-flattened so that blending is one MatMul.
        buffer("template_flat", body.v_template.T.reshape(1, 3 * n_verts))
        buffer("shape_basis", body.shapedirs.transpose(2, 1, 0).reshape(n_betas, 3 * n_verts))
        buffer("J_template", body.J_template)
        buffer("joint_shape_basis", body.J_shapedirs.reshape(n_joints * 3, n_betas).T)
        buffer("weights_t", body.weights.T)  # (J, V)
        self.has_pose_correctives = body.posedirs is not None
        if self.has_pose_correctives:
            n_pose = body.posedirs.shape[2]
            buffer("pose_basis", body.posedirs.transpose(2, 1, 0).reshape(n_pose, 3 * n_verts))
            buffer("eye3", np.eye(3))
        self.register_buffer(
            "faces", torch.from_numpy(body.faces.astype(np.int64)), persistent=False
        )

    @property
    def v_template(self) -> Tensor:
        """The rest mesh ``(V, 3)`` (a view of the component-major buffer)."""
        return self.template_flat.reshape(3, self.n_verts).T

    def extra_repr(self) -> str:
        return (
            f"verts={self.n_verts}, joints={self.n_joints}, betas={self.n_betas}, "
            f"pose_correctives={self.has_pose_correctives}, hash={self.body_hash}"
        )

    def forward(self, rotmats: Tensor, betas: Tensor) -> tuple[Tensor, Tensor]:
        """Vertices ``(N,V,3)`` and posed joints ``(N,J,3)`` in FP32, body frame, metres.

        SMPL semantics: ``rotmats[:, 0]`` is the global orientation, the others are relative
        to the parent joint.
        """
        with torch.autocast(device_type=rotmats.device.type, enabled=False):
            return self._skin(rotmats.float(), betas.float())

    def _skin(self, rotmats: Tensor, betas: Tensor) -> tuple[Tensor, Tensor]:
        n_verts, n_joints = self.n_verts, self.n_joints
        k = betas.shape[-1]
        shape_basis = self.shape_basis if k == self.n_betas else self.shape_basis[:k]
        joint_basis = self.joint_shape_basis if k == self.n_betas else self.joint_shape_basis[:k]
        v_posed = self.template_flat + betas @ shape_basis  # (N, 3V), component-major
        rest = self.J_template + (betas @ joint_basis).reshape(-1, n_joints, 3)
        if self.has_pose_correctives:
            feature = (rotmats[:, 1:] - self.eye3).reshape(-1, (n_joints - 1) * 9)
            v_posed = v_posed + feature @ self.pose_basis
        v_posed = v_posed.reshape(-1, 3, n_verts)

        local_r = torch.unbind(rotmats, dim=1)
        rest_j = torch.unbind(rest, dim=1)
        world_r = [local_r[0]]
        world_t = [rest_j[0]]
        for i in range(1, n_joints):
            p = self.parents[i]
            offset = (rest_j[i] - rest_j[p]).unsqueeze(-1)
            world_r.append(world_r[p] @ local_r[i])
            world_t.append(world_t[p] + (world_r[p] @ offset).squeeze(-1))
        g_r = torch.stack(world_r, dim=1)  # (N,J,3,3)
        joints = torch.stack(world_t, dim=1)  # (N,J,3)
        # Skinning transforms move rest-pose points: x -> G_R (x - J_rest) + J_posed.
        g_t = joints - (g_r @ rest.unsqueeze(-1)).squeeze(-1)
        blend = torch.cat([g_r.flatten(-2), g_t], dim=-1)  # (N,J,12)
        # All samples' 12 blended transform entries per vertex in one MatMul: (N*12, J) @ (J, V)
        per_vertex = (blend.transpose(1, 2).reshape(-1, n_joints) @ self.weights_t).reshape(
            -1, 12, n_verts
        )
        x, y, z = v_posed[:, 0], v_posed[:, 1], v_posed[:, 2]
        coords = [
            per_vertex[:, 3 * c] * x
            + per_vertex[:, 3 * c + 1] * y
            + per_vertex[:, 3 * c + 2] * z
            + per_vertex[:, 9 + c]
            for c in range(3)
        ]
        return torch.stack(coords, dim=-1), joints
