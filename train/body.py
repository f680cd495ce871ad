"""``BodyLayer``: SMPL linear blend skinning in torch, exportable to ONNX with plain ops.

The torch twin of ``hmrt.runtime.body.BodyModel.forward``, used inside every model. Written for
deployment (shared/research/body-model-and-data.md §2.5) and for a short ONNX graph, since on a
CPU the cost of this FP32 island is mostly per-node overhead, not arithmetic:

* forward kinematics compose homogeneous 4x4 transforms by pointer jumping over the kinematic
  tree: each round is one Gather of the ancestors' transforms and one batched MatMul, so the
  24 SMPL joints take 4 rounds (tree depth 8) instead of an unrolled chain per joint; the 4x4
  matrices are built with constant MatMuls (no Pad, no Expand);
* shape and pose bases are applied with ``matmul`` on pre-flattened bases (no Einsum), the joint
  regressor is folded into ``J_template``/``J_shapedirs`` (no per-call regression over all
  vertices);
* geometry is component-major ``(N, 3, V)`` until one final Transpose, so the per-vertex 3x4
  apply and the optional root subtraction broadcast over long contiguous rows;
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
        # Kinematic-tree constants (see _forward_kinematics): bone offsets as one MatMul,
        # an identity "joint" J appended by a selection MatMul, and the pointer-jumping rounds.
        parents = self.parents
        bone = np.eye(n_joints)
        for i, p in enumerate(parents):
            if p >= 0:
                bone[i, p] = -1.0
        buffer("bone_matrix", bone)  # offsets = bone_matrix @ rest_joints
        buffer("append_identity_joint", np.eye(n_joints + 1, n_joints))  # (J+1, J)
        buffer("homogeneous_rows", np.eye(4, 3))  # (4, 3): [[R | t]] -> rows 0..2 of 4x4
        last_row = np.zeros((n_joints + 1, 4, 4))
        last_row[:, 3, 3] = 1.0
        last_row[n_joints, :3, :3] = np.eye(3)  # the appended joint is the identity
        buffer("homogeneous_last", last_row)
        self.fk_rounds = len(_pointer_jumping_rounds(parents))
        for r, ancestors in enumerate(_pointer_jumping_rounds(parents)):
            self.register_buffer(
                f"fk_ancestors_{r}", torch.tensor(ancestors, dtype=torch.int64), persistent=False
            )
        self.supports_root_relative = True

    @property
    def v_template(self) -> Tensor:
        """The rest mesh ``(V, 3)`` (a view of the component-major buffer)."""
        return self.template_flat.reshape(3, self.n_verts).T

    def extra_repr(self) -> str:
        return (
            f"verts={self.n_verts}, joints={self.n_joints}, betas={self.n_betas}, "
            f"pose_correctives={self.has_pose_correctives}, hash={self.body_hash}"
        )

    def forward(
        self, rotmats: Tensor, betas: Tensor, root_relative: bool = False
    ) -> tuple[Tensor, Tensor]:
        """Vertices ``(N,V,3)`` and posed joints ``(N,J,3)`` in FP32, metres.

        SMPL semantics: ``rotmats[:, 0]`` is the global orientation, the others are relative
        to the parent joint. Body frame by default; ``root_relative=True`` subtracts joint 0
        from both (what every model's body head wants), done before the final Transpose where
        it is a cheap row-wise broadcast.
        """
        with torch.autocast(device_type=rotmats.device.type, enabled=False):
            return self._skin(rotmats.float(), betas.float(), root_relative)

    def _forward_kinematics(self, rotmats: Tensor, rest: Tensor) -> Tensor:
        """World transforms ``(N, J, 3, 4)`` = ``[R | t]`` of every joint.

        Local transforms ``[[R_i, rest_i - rest_parent], [0, 1]]`` (4x4) plus an identity at
        index J. Pointer jumping: ``G_i <- G_anc(i) @ G_i`` with ``anc`` the current ancestor
        pointer (J once the root is passed), so after round r every ``G_i`` spans 2**r links.
        """
        n_joints = self.n_joints
        offsets = torch.matmul(self.bone_matrix, rest).unsqueeze(-1)  # (N,J,3,1)
        local = torch.cat([rotmats, offsets], dim=-1).reshape(-1, n_joints, 12)
        local = torch.matmul(self.append_identity_joint, local).reshape(-1, n_joints + 1, 3, 4)
        world = torch.matmul(self.homogeneous_rows, local) + self.homogeneous_last
        for r in range(self.fk_rounds):
            ancestors = getattr(self, f"fk_ancestors_{r}")
            world = torch.matmul(world.index_select(1, ancestors), world)
        return world[:, :n_joints, :3, :]

    def _skin(
        self, rotmats: Tensor, betas: Tensor, root_relative: bool = False
    ) -> tuple[Tensor, Tensor]:
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

        world = self._forward_kinematics(rotmats, rest)  # (N,J,3,4)
        g_r, g_t = world[..., :3], world[..., 3:]
        joints = g_t.squeeze(-1)  # (N,J,3)
        # Skinning transforms move rest-pose points: x -> G_R (x - J_rest) + J_posed.
        skin = torch.cat([g_r, g_t - g_r @ rest.unsqueeze(-1)], dim=-1)  # (N,J,3,4)
        # All samples' 12 blended transform entries per vertex in one MatMul: (N*12, J) @ (J, V)
        per_vertex = skin.reshape(-1, n_joints, 12).transpose(1, 2).reshape(-1, n_joints)
        per_vertex = (per_vertex @ self.weights_t).reshape(-1, 3, 4, n_verts)
        col = per_vertex.unbind(2)  # 4 x (N, 3, V): the columns of each vertex's 3x4
        x, y, z = v_posed[:, 0:1], v_posed[:, 1:2], v_posed[:, 2:3]
        coords = col[0] * x + col[1] * y + col[2] * z + col[3]  # (N, 3, V)
        if root_relative:
            root = joints[:, :1]
            coords = coords - root.transpose(1, 2)
            joints = joints - root
        return coords.transpose(1, 2), joints


def _pointer_jumping_rounds(parents: list[int]) -> list[list[int]]:
    """Ancestor indices per pointer-jumping round over ``J`` joints plus an identity at ``J``.

    Round 0 points at the parent (the root at J); each later round at the previous pointer's
    pointer; rounds stop once every pointer reaches J (ceil(log2(depth + 1)) rounds).
    """
    n = len(parents)
    pointer = [p if p >= 0 else n for p in parents] + [n]
    rounds = []
    while any(q != n for q in pointer[:n]):
        rounds.append(list(pointer))
        pointer = [pointer[q] for q in pointer]
    return rounds
