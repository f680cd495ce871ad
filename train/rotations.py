"""Rotation conversions in torch, exportable to ONNX (opset 17) with plain ops.

Twin of ``hmrt.runtime.rotations`` (numpy): same names, conventions and formulas (see that
module's docstring: column-vector matrices, rotation vectors, SPIN/DaNet 6D layout, scalar-first
quaternions with w >= 0). Written for deployment:

* no ``einsum``, ``cross`` or ``linalg`` calls: dot products are ``(a * b).sum(-1)`` and the
  cross product is spelled out, so the graph holds only Mul/Add/Sub/ReduceSum/MatMul-style ops;
* no ``x + eps`` guards: small angles take a Taylor branch through ``torch.where`` and every
  division has a clamped (finite, non-zero) denominator, so gradients stay finite too;
* no in-place ops, so tracing and autograd see the same graph.

These conversions are precision-sensitive: models declare them as FP32 islands for export.
"""

from __future__ import annotations

import torch
from torch import Tensor

from hmrt.runtime.rotations import NORM_FLOOR_SQ, SMALL_ANGLE_SQ

__all__ = [
    "axis_angle_to_matrix",
    "axis_angle_to_quaternion",
    "geodesic_distance",
    "matrix_to_axis_angle",
    "matrix_to_quaternion",
    "matrix_to_rot6d",
    "quaternion_to_axis_angle",
    "quaternion_to_matrix",
    "rot6d_to_matrix",
]


def _as_float(x: Tensor) -> Tensor:
    return x if x.is_floating_point() else x.float()


def _rsqrt_floor(sq: Tensor) -> Tensor:
    """``1 / sqrt(sq)`` with sq floored at NORM_FLOOR_SQ (degenerate inputs stay finite)."""
    return torch.rsqrt(torch.clamp(sq, min=NORM_FLOOR_SQ))


def _to_3x3(entries: list[Tensor]) -> Tensor:
    """Nine row-major entries ``(...)`` to matrices ``(..., 3, 3)``."""
    return torch.stack(entries, dim=-1).unflatten(-1, (3, 3))


def axis_angle_to_matrix(axis_angle: Tensor) -> Tensor:
    """Rotation vectors ``(..., 3)`` to rotation matrices ``(..., 3, 3)`` (Rodrigues' formula)."""
    aa = _as_float(axis_angle)
    x, y, z = aa[..., 0], aa[..., 1], aa[..., 2]
    t2 = x * x + y * y + z * z
    small = t2 < SMALL_ANGLE_SQ
    t = torch.sqrt(torch.clamp(t2, min=SMALL_ANGLE_SQ))
    a = torch.where(small, 1.0 - t2 / 6.0 + t2 * t2 / 120.0, torch.sin(t) / t)
    # 2 sin^2(t/2) / t^2 has no cancellation, unlike (1 - cos t) / t^2.
    h = torch.sin(0.5 * t) / t
    b = torch.where(small, 0.5 - t2 / 24.0 + t2 * t2 / 720.0, 2.0 * h * h)
    c = 1.0 - b * t2  # cos(t), consistent with a and b on both branches
    bxy, bxz, byz = b * x * y, b * x * z, b * y * z
    entries = [
        c + b * x * x, bxy - a * z, bxz + a * y,
        bxy + a * z, c + b * y * y, byz - a * x,
        bxz - a * y, byz + a * x, c + b * z * z,
    ]  # fmt: skip
    return _to_3x3(entries)


def quaternion_to_matrix(quaternion: Tensor) -> Tensor:
    """Quaternions ``(..., 4)`` (w, x, y, z; any norm) to rotation matrices ``(..., 3, 3)``."""
    q = _as_float(quaternion)
    q = q * _rsqrt_floor((q * q).sum(-1, keepdim=True))
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    entries = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]  # fmt: skip
    return _to_3x3(entries)


def matrix_to_quaternion(matrix: Tensor) -> Tensor:
    """Rotation matrices ``(..., 3, 3)`` to unit quaternions ``(..., 4)`` (w, x, y, z), w >= 0.

    Shepperd's method: of four candidates, the one with the largest pivot ``4 q_i^2`` (>= 1)
    is selected with nested ``where`` (no ArgMax/OneHot in the graph).
    """
    m = _as_float(matrix)
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    p0 = 1 + m00 + m11 + m22  # 4 w^2
    p1 = 1 + m00 - m11 - m22  # 4 x^2
    p2 = 1 - m00 + m11 - m22  # 4 y^2
    p3 = 1 - m00 - m11 + m22  # 4 z^2
    # Unselected candidates may have a tiny or negative pivot: the floor keeps them finite.
    s0, s1, s2, s3 = (torch.sqrt(torch.clamp(p, min=0.01)) for p in (p0, p1, p2, p3))
    d0, d1, d2, d3 = 2 * s0, 2 * s1, 2 * s2, 2 * s3
    c0 = torch.stack([s0 / 2, (m21 - m12) / d0, (m02 - m20) / d0, (m10 - m01) / d0], -1)
    c1 = torch.stack([(m21 - m12) / d1, s1 / 2, (m01 + m10) / d1, (m02 + m20) / d1], -1)
    c2 = torch.stack([(m02 - m20) / d2, (m01 + m10) / d2, s2 / 2, (m12 + m21) / d2], -1)
    c3 = torch.stack([(m10 - m01) / d3, (m02 + m20) / d3, (m12 + m21) / d3, s3 / 2], -1)
    best = torch.maximum(torch.maximum(p0, p1), torch.maximum(p2, p3)).unsqueeze(-1)
    q = torch.where(
        p0.unsqueeze(-1) >= best,
        c0,
        torch.where(p1.unsqueeze(-1) >= best, c1, torch.where(p2.unsqueeze(-1) >= best, c2, c3)),
    )
    q = torch.where(q[..., :1] < 0, -q, q)
    return q * _rsqrt_floor((q * q).sum(-1, keepdim=True))


def quaternion_to_axis_angle(quaternion: Tensor) -> Tensor:
    """Quaternions ``(..., 4)`` (w, x, y, z) to rotation vectors ``(..., 3)``, angle in [0, pi]."""
    q = _as_float(quaternion)
    q = q * _rsqrt_floor((q * q).sum(-1, keepdim=True))
    q = torch.where(q[..., :1] < 0, -q, q)
    w, v = q[..., 0], q[..., 1:]
    n2 = (v * v).sum(-1)
    small = n2 < SMALL_ANGLE_SQ
    n = torch.sqrt(torch.clamp(n2, min=SMALL_ANGLE_SQ))
    # angle / |v| = 2 atan2(|v|, w) / |v|; series 2/w (1 - u/3 + u^2/5) with u = |v|^2 / w^2.
    # w ~ 1 wherever the series is selected; the floor keeps the other lanes finite.
    ws = torch.clamp(w, min=0.5)
    u = n2 / (ws * ws)
    ratio = torch.where(
        small, 2.0 / ws * (1.0 - u / 3.0 + u * u / 5.0), 2.0 * torch.atan2(n, w) / n
    )
    return v * ratio.unsqueeze(-1)


def axis_angle_to_quaternion(axis_angle: Tensor) -> Tensor:
    """Rotation vectors ``(..., 3)`` to unit quaternions ``(..., 4)`` (w, x, y, z)."""
    aa = _as_float(axis_angle)
    t2 = (aa * aa).sum(-1)
    small = t2 < SMALL_ANGLE_SQ
    t = torch.sqrt(torch.clamp(t2, min=SMALL_ANGLE_SQ))
    k = torch.where(small, 0.5 - t2 / 48.0 + t2 * t2 / 3840.0, torch.sin(0.5 * t) / t)
    # cos(t/2) of the clamped t is wrong below the threshold: its series is used there.
    w = torch.where(small, 1.0 - t2 / 8.0 + t2 * t2 / 384.0, torch.cos(0.5 * t))
    q = torch.cat([w.unsqueeze(-1), aa * k.unsqueeze(-1)], dim=-1)
    return torch.where(q[..., :1] < 0, -q, q)


def matrix_to_axis_angle(matrix: Tensor) -> Tensor:
    """Rotation matrices ``(..., 3, 3)`` to rotation vectors ``(..., 3)``; stable near 0 and pi."""
    return quaternion_to_axis_angle(matrix_to_quaternion(matrix))


def rot6d_to_matrix(rot6d: Tensor) -> Tensor:
    """6D rotations ``(..., 6)`` to rotation matrices ``(..., 3, 3)`` by Gram-Schmidt.

    Any input (not necessarily orthonormal) gives a proper rotation (det +1): b1 = a1/|a1|,
    b2 = the part of a2 orthogonal to b1, normalised, b3 = b1 x b2; R = [b1 b2 b3] as columns.
    """
    x = _as_float(rot6d).unflatten(-1, (3, 2))
    a1, a2 = x[..., 0], x[..., 1]
    b1 = a1 * _rsqrt_floor((a1 * a1).sum(-1, keepdim=True))
    u2 = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
    b2 = u2 * _rsqrt_floor((u2 * u2).sum(-1, keepdim=True))
    b1x, b1y, b1z = b1[..., 0], b1[..., 1], b1[..., 2]
    b2x, b2y, b2z = b2[..., 0], b2[..., 1], b2[..., 2]
    b3 = torch.stack([b1y * b2z - b1z * b2y, b1z * b2x - b1x * b2z, b1x * b2y - b1y * b2x], dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rot6d(matrix: Tensor) -> Tensor:
    """Rotation matrices ``(..., 3, 3)`` to 6D ``(..., 6)``: the first two columns."""
    return _as_float(matrix)[..., :, :2].flatten(-2)


def geodesic_distance(matrix_a: Tensor, matrix_b: Tensor) -> Tensor:
    """Angle in radians ``(...)`` of the relative rotation ``A^T B``, in [0, pi].

    atan2 of sine and cosine parts stays accurate near 0, where acos of the trace does not;
    the gradient stays finite at zero distance.
    """
    m = _as_float(matrix_a).transpose(-1, -2) @ _as_float(matrix_b)
    cos = 0.5 * (m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2] - 1.0)
    sx = m[..., 2, 1] - m[..., 1, 2]
    sy = m[..., 0, 2] - m[..., 2, 0]
    sz = m[..., 1, 0] - m[..., 0, 1]
    s2 = sx * sx + sy * sy + sz * sz
    # sqrt(s2) = s2 / sqrt(s2): flooring only the denominator keeps the value at 0 and the
    # gradient finite (below the floor the angle is off by at most 5e-7 rad).
    sin = 0.5 * s2 * _rsqrt_floor(s2)
    return torch.atan2(sin, cos)
