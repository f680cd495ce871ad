"""UV-space part assignment ``A_uv`` and the two constant maps BoBW builds on it.

BoBW (paper App. B, shared/research/seed-bobw.md §1.2) splits the UV chart into one part per
joint: on the template (T-pose) mesh every vertex goes to its nearest joint (Euclidean), the
one-hot vertex assignment is interpolated into UV with the mesh-to-UV barycentrics
(:func:`hmrt.train.models.layers.mesh_to_uv.mesh_to_uv_table`) and each texel on the chart takes
the arg-max part. The paper then makes the assignment left/right symmetric. Here that is done
at the vertex level, which needs no assumption about the chart: the vertex-to-joint distances
are averaged with their mirror images, ``D'[v, k] = (D[v, k] + D[flip_vertex[v], flip[k]]) / 2``,
so ``D'[flip_vertex[v], flip[k]] == D'[v, k]`` exactly, and a vertex equidistant from a joint and
its mirror (a vertex on the symmetry plane) is split half/half between the two. The vertex
weights ``W (V, K)`` then satisfy ``W[flip_vertex[v], flip[k]] == W[v, k]`` exactly.

The bundled body's continuous chart is itself mirror-symmetric about ``u = 0.5`` (face by face,
``flip_vertex`` maps each corner's ``(u, v)`` to ``(1 - u, v)`` to float32 rounding, 6e-8), so
the texel assignment inherits the symmetry: ``A[k][:, c] == A[flip[k]][:, S - 1 - c]`` (checked
by the tests at S = 64 and 128 with the LSP-14 joints). The arg-max has no exact ties on the
bundled chart (smallest winner margin: 3.6e-4 at S = 64, 4.8e-3 at S = 128), far above the
float32 barycentric rounding (1e-5), so rounding cannot break the symmetry; an exact tie would
go to the lower part index.

:class:`PartAverage` (``J_initial``, ``J_final``: a masked per-part mean, §1.4(a), §1.6) and
:class:`PartDistribute` (``UV_j = A^T J``, §1.4(e)) apply ``A`` as one MatMul with a constant
``(S*S, K)`` / ``(K, S*S)`` matrix: fixed shapes, divisions by ``clamp(count, min=1)`` (§4.4).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from hmrt.train.models.layers.mesh_to_uv import _as_body, mesh_to_uv_table
from hmrt.train.models.layers.precision import Fp32Module


def _check_flip(flip: Sequence[int], k: int) -> np.ndarray:
    from hmrt.runtime.errors import InputError

    flip = np.asarray(flip, dtype=np.int64)
    if flip.shape != (k,) or not np.array_equal(np.sort(flip), np.arange(k)):
        raise InputError(f"flip must be a permutation of {k} joints, got {flip.tolist()}")
    if not np.array_equal(flip[flip], np.arange(k)):
        raise InputError(f"flip must be its own inverse (a left/right swap), got {flip.tolist()}")
    return flip


def vertex_part_weights(body, regressor: np.ndarray, flip: Sequence[int]) -> np.ndarray:
    """Symmetric nearest-joint assignment of the template's vertices: ``(V, K)`` float64.

    Joints = ``regressor (K, V) @ v_template``; each row is one-hot on the vertex's nearest
    joint under the mirror-averaged distance (module docstring), or split equally between
    exactly tied joints. Without ``flip_vertex`` on the body, plain nearest joint.
    """
    body = _as_body(body)
    verts = np.asarray(body.v_template, dtype=np.float64)
    reg = np.asarray(regressor, dtype=np.float64)
    flip = _check_flip(flip, reg.shape[0])
    joints = reg @ verts
    dist = np.linalg.norm(verts[:, None, :] - joints[None, :, :], axis=-1)  # (V, K)
    flip_vertex = getattr(body, "flip_vertex", None)
    if flip_vertex is not None:
        dist = 0.5 * (dist + dist[np.asarray(flip_vertex, dtype=np.int64)][:, flip])
    nearest = (dist == dist.min(axis=1, keepdims=True)).astype(np.float64)
    return nearest / nearest.sum(axis=1, keepdims=True)


def uv_part_probabilities(
    body, uv_size: int, regressor: np.ndarray, flip: Sequence[int]
) -> np.ndarray:
    """The vertex assignment interpolated into UV: ``(K, S, S)`` float64, 0 off the chart."""
    body = _as_body(body)
    table = mesh_to_uv_table(body, uv_size)
    weights = vertex_part_weights(body, regressor, flip)
    probs = np.einsum("pc,pck->kp", table.bary.astype(np.float64), weights[table.index])
    return probs.reshape(-1, uv_size, uv_size)


def uv_part_assignment(
    body, uv_size: int, regressor: np.ndarray, flip: Sequence[int]
) -> np.ndarray:
    """BoBW's ``A_uv``: ``(K, S, S)`` float32 one-hot per texel on the chart, 0 off it.

    ``regressor (K, V)`` the joint regressor (e.g. ``lsp14_regressor(body)``), ``flip (K,)``
    its left/right permutation (e.g. ``LSP14_FLIP``). See the module docstring.
    """
    probs = uv_part_probabilities(body, uv_size, regressor, flip)
    cover = mesh_to_uv_table(body, uv_size).coverage > 0
    choice = np.argmax(probs, axis=0)  # exact ties (none on the bundled chart): lower index
    one_hot = (np.arange(probs.shape[0])[:, None, None] == choice[None]) & cover[None]
    return one_hot.astype(np.float32)


def _flat_assignment(assign: np.ndarray | Tensor) -> tuple[Tensor, int]:
    """``(K, S, S)`` -> float32 ``(K, S*S)`` copy and ``S``."""
    a = torch.tensor(np.asarray(assign), dtype=torch.float32)
    if a.ndim != 3 or a.shape[1] != a.shape[2]:
        raise ValueError(f"assign must be (K, S, S), got {tuple(a.shape)}")
    return a.reshape(a.shape[0], -1), int(a.shape[1])


class PartAverage(Fp32Module):
    """``forward(uv_map (N,C,S,S), valid (N,1,S,S) | None) -> joints (N,K,C), visible (N,K)``.

    ``joints[k]`` = mean of ``uv_map`` over the texels of part ``k`` where ``valid`` is 1
    (``valid`` None: all texels of the part). ``visible[k]`` = 1.0 when part ``k`` has at least
    one valid texel; a fully occluded part gives 0 joints and visible 0 (the numerator is 0 and
    the denominator is ``clamp(count, min=1)``: no NaN, also in FP16 engines). ``valid`` is a
    0/1 mask (a soft weight in (0, 1) is accepted but the clamp biases a part whose weights sum
    below 1). One MatMul with the constant ``(S*S, K)`` part matrix (non-persistent buffer).
    """

    def __init__(self, assign: np.ndarray | Tensor):
        super().__init__()
        a, self.uv_size = _flat_assignment(assign)
        self.register_buffer("assign_t", a.t().contiguous(), persistent=False)  # (S*S, K)
        self.register_buffer("count", a.sum(dim=1), persistent=False)  # (K,)

    def extra_repr(self) -> str:
        return f"parts={self.assign_t.shape[1]}, uv_size={self.uv_size}"

    def forward(self, uv_map: Tensor, valid: Tensor | None = None) -> tuple[Tensor, Tensor]:
        n, c = uv_map.shape[0], uv_map.shape[1]
        flat = uv_map.reshape(n, c, -1)
        if valid is None:
            sums = torch.matmul(flat, self.assign_t)  # (N, C, K)
            count = self.count.reshape(1, 1, -1)
            visible = (count[:, 0] > 0.0).float().expand(n, -1)
        else:
            weight = valid.reshape(n, 1, -1)
            sums = torch.matmul(flat * weight, self.assign_t)
            count = torch.matmul(weight, self.assign_t)  # (N, 1, K)
            visible = (count[:, 0] > 0.0).float()
        joints = (sums / count.clamp(min=1.0)).transpose(1, 2)
        return joints, visible


class PartDistribute(Fp32Module):
    """``forward(joints (N,K,C)) -> (N,C,S,S)``: every texel holds its part's joint (``A^T J``),
    0 off the chart. One MatMul with the constant ``(K, S*S)`` part matrix (non-persistent)."""

    def __init__(self, assign: np.ndarray | Tensor):
        super().__init__()
        a, self.uv_size = _flat_assignment(assign)
        self.register_buffer("assign", a.contiguous(), persistent=False)  # (K, S*S)

    def extra_repr(self) -> str:
        return f"parts={self.assign.shape[0]}, uv_size={self.uv_size}"

    def forward(self, joints: Tensor) -> Tensor:
        n, c = joints.shape[0], joints.shape[2]
        out = torch.matmul(joints.transpose(1, 2), self.assign)  # (N, C, S*S)
        return out.reshape(n, c, self.uv_size, self.uv_size)


__all__ = [
    "PartAverage",
    "PartDistribute",
    "uv_part_assignment",
    "uv_part_probabilities",
    "vertex_part_weights",
]
