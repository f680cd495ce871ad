"""Rotation conversions in numpy: axis-angle, rotation matrix, 6D (Zhou et al.) and quaternion.

The runtime's counterpart of ``hmrt.train.rotations`` (torch): same names, same conventions,
same formulas, so a model's outputs can be post-processed here without torch. Conventions:

* rotation matrices act on column vectors (``x' = R @ x``);
* axis-angle is the rotation vector ``angle * axis`` (SMPL's pose parameters);
* 6D is the first two *columns* of R, laid out as ``R[..., :, :2].reshape(..., 6)``, i.e. the
  SPIN/DaNet layout ``(a1x, a2x, a1y, a2y, a1z, a2z)``;
* quaternions are scalar first ``(w, x, y, z)``, returned with ``w >= 0``.

Every function accepts any leading batch shape and keeps float32/float64 inputs in their dtype.
Small angles use Taylor branches selected with ``where`` instead of ``+ eps`` guards, so the
torch twin exports to ONNX without constants that FP16 would flush to zero.
"""

from __future__ import annotations

import numpy as np

# Squared angle (or squared sine) below which the Taylor branch is used. 1e-4 is a normal FP16
# number, and the dropped Taylor terms (~t^6/5040 = 2e-16) are below FP64 resolution.
SMALL_ANGLE_SQ = 1e-4
# Floor for squared norms of 6D columns and quaternions (degenerate input only).
NORM_FLOOR_SQ = 1e-12

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


def _as_float(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    return x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)


def _rodrigues_coefficients(t2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``sin(t)/t`` and ``(1 - cos t)/t**2`` from the squared angle, exact at t = 0."""
    small = t2 < SMALL_ANGLE_SQ
    t = np.sqrt(np.maximum(t2, SMALL_ANGLE_SQ))
    a = np.where(small, 1.0 - t2 / 6.0 + t2 * t2 / 120.0, np.sin(t) / t)
    # 2 sin^2(t/2) / t^2 has no cancellation, unlike (1 - cos t) / t^2.
    h = np.sin(0.5 * t) / t
    b = np.where(small, 0.5 - t2 / 24.0 + t2 * t2 / 720.0, 2.0 * h * h)
    return a.astype(t2.dtype, copy=False), b.astype(t2.dtype, copy=False)


def axis_angle_to_matrix(axis_angle: np.ndarray) -> np.ndarray:
    """Rotation vectors ``(..., 3)`` to rotation matrices ``(..., 3, 3)`` (Rodrigues' formula)."""
    aa = _as_float(axis_angle)
    x, y, z = aa[..., 0], aa[..., 1], aa[..., 2]
    t2 = x * x + y * y + z * z
    a, b = _rodrigues_coefficients(t2)
    c = 1.0 - b * t2  # cos(t), consistent with a and b on both branches
    bxy, bxz, byz = b * x * y, b * x * z, b * y * z
    rows = [
        c + b * x * x, bxy - a * z, bxz + a * y,
        bxy + a * z, c + b * y * y, byz - a * x,
        bxz - a * y, byz + a * x, c + b * z * z,
    ]  # fmt: skip
    return np.stack(rows, axis=-1).reshape(*aa.shape[:-1], 3, 3)


def quaternion_to_matrix(quaternion: np.ndarray) -> np.ndarray:
    """Quaternions ``(..., 4)`` (w, x, y, z; any norm) to rotation matrices ``(..., 3, 3)``."""
    q = _as_float(quaternion)
    q = q / np.sqrt(np.maximum((q * q).sum(-1, keepdims=True), NORM_FLOOR_SQ))
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]  # fmt: skip
    return np.stack(rows, axis=-1).reshape(*q.shape[:-1], 3, 3)


def matrix_to_quaternion(matrix: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` to unit quaternions ``(..., 4)`` (w, x, y, z), w >= 0.

    Shepperd's method: four candidate quaternions, each divided by a different component; the
    one whose pivot ``4 q_i^2`` is largest (always >= 1) is picked, so no division is unstable,
    including at 180 degrees where w = 0.
    """
    m = _as_float(matrix)
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    pivots = [
        1 + m00 + m11 + m22,  # 4 w^2
        1 + m00 - m11 - m22,  # 4 x^2
        1 - m00 + m11 - m22,  # 4 y^2
        1 - m00 - m11 + m22,  # 4 z^2
    ]
    # Unselected candidates may have a tiny or negative pivot: the floor keeps them finite.
    s = [np.sqrt(np.maximum(p, 0.01)) for p in pivots]  # 2 |q_i| for the selected pivot
    d0, d1, d2, d3 = (2 * si for si in s)
    cands = [
        np.stack([s[0] / 2, (m21 - m12) / d0, (m02 - m20) / d0, (m10 - m01) / d0], -1),
        np.stack([(m21 - m12) / d1, s[1] / 2, (m01 + m10) / d1, (m02 + m20) / d1], -1),
        np.stack([(m02 - m20) / d2, (m01 + m10) / d2, s[2] / 2, (m12 + m21) / d2], -1),
        np.stack([(m10 - m01) / d3, (m02 + m20) / d3, (m12 + m21) / d3, s[3] / 2], -1),
    ]
    best = np.maximum(np.maximum(pivots[0], pivots[1]), np.maximum(pivots[2], pivots[3]))[..., None]
    q = np.where(
        pivots[0][..., None] >= best,
        cands[0],
        np.where(
            pivots[1][..., None] >= best,
            cands[1],
            np.where(pivots[2][..., None] >= best, cands[2], cands[3]),
        ),
    )
    q = np.where(q[..., :1] < 0, -q, q)
    return q / np.sqrt(np.maximum((q * q).sum(-1, keepdims=True), NORM_FLOOR_SQ))


def quaternion_to_axis_angle(quaternion: np.ndarray) -> np.ndarray:
    """Quaternions ``(..., 4)`` (w, x, y, z) to rotation vectors ``(..., 3)``, angle in [0, pi]."""
    q = _as_float(quaternion)
    q = q / np.sqrt(np.maximum((q * q).sum(-1, keepdims=True), NORM_FLOOR_SQ))
    q = np.where(q[..., :1] < 0, -q, q)
    w, v = q[..., 0], q[..., 1:]
    n2 = (v * v).sum(-1)
    small = n2 < SMALL_ANGLE_SQ
    n = np.sqrt(np.maximum(n2, SMALL_ANGLE_SQ))
    # angle / |v| = 2 atan2(|v|, w) / |v|; for small |v| its series 2/w (1 - u/3 + u^2/5), u =
    # |v|^2 / w^2. w ~ 1 wherever the series is selected; the floor keeps other lanes finite.
    ws = np.maximum(w, 0.5)
    u = n2 / (ws * ws)
    ratio = np.where(small, 2.0 / ws * (1.0 - u / 3.0 + u * u / 5.0), 2.0 * np.arctan2(n, w) / n)
    return v * ratio[..., None].astype(q.dtype, copy=False)


def axis_angle_to_quaternion(axis_angle: np.ndarray) -> np.ndarray:
    """Rotation vectors ``(..., 3)`` to unit quaternions ``(..., 4)`` (w, x, y, z)."""
    aa = _as_float(axis_angle)
    t2 = (aa * aa).sum(-1)
    small = t2 < SMALL_ANGLE_SQ
    t = np.sqrt(np.maximum(t2, SMALL_ANGLE_SQ))
    # sin(t/2)/t with its series for small angles
    k = np.where(small, 0.5 - t2 / 48.0 + t2 * t2 / 3840.0, np.sin(0.5 * t) / t).astype(
        aa.dtype, copy=False
    )
    # cos(t/2) of the clamped t is wrong below the threshold: its series is used there.
    w = np.where(small, 1.0 - t2 / 8.0 + t2 * t2 / 384.0, np.cos(0.5 * t)).astype(
        aa.dtype, copy=False
    )
    q = np.concatenate([w[..., None], aa * k[..., None]], axis=-1)
    return np.where(q[..., :1] < 0, -q, q)


def matrix_to_axis_angle(matrix: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` to rotation vectors ``(..., 3)``; stable near 0 and pi."""
    return quaternion_to_axis_angle(matrix_to_quaternion(matrix))


def rot6d_to_matrix(rot6d: np.ndarray) -> np.ndarray:
    """6D rotations ``(..., 6)`` to rotation matrices ``(..., 3, 3)`` by Gram-Schmidt.

    The input need not be orthonormal: the first column is normalised, the second made
    orthogonal to it, and the third is their cross product, so the result has det +1.
    """
    x = _as_float(rot6d).reshape(*np.shape(rot6d)[:-1], 3, 2)
    a1, a2 = x[..., 0], x[..., 1]
    b1 = a1 / np.sqrt(np.maximum((a1 * a1).sum(-1, keepdims=True), NORM_FLOOR_SQ))
    u2 = a2 - (b1 * a2).sum(-1, keepdims=True) * b1
    b2 = u2 / np.sqrt(np.maximum((u2 * u2).sum(-1, keepdims=True), NORM_FLOOR_SQ))
    b3 = np.cross(b1, b2)
    return np.stack([b1, b2, b3], axis=-1)


def matrix_to_rot6d(matrix: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` to 6D ``(..., 6)``: the first two columns."""
    m = _as_float(matrix)
    return m[..., :, :2].reshape(*m.shape[:-2], 6)


def geodesic_distance(matrix_a: np.ndarray, matrix_b: np.ndarray) -> np.ndarray:
    """Angle in radians ``(...)`` of the relative rotation ``A^T B``, in [0, pi].

    atan2 of sine and cosine parts stays accurate near 0 (acos of the trace does not).
    """
    a, b = _as_float(matrix_a), _as_float(matrix_b)
    m = np.swapaxes(a, -1, -2) @ b
    cos = 0.5 * (m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2] - 1.0)
    sx = m[..., 2, 1] - m[..., 1, 2]
    sy = m[..., 0, 2] - m[..., 2, 0]
    sz = m[..., 1, 0] - m[..., 0, 1]
    s2 = sx * sx + sy * sy + sz * sz
    # Same form as the torch twin (finite gradient at 0 there): below the floor the angle is
    # off by at most 5e-7 rad.
    sin = 0.5 * s2 / np.sqrt(np.maximum(s2, NORM_FLOOR_SQ))
    return np.arctan2(sin, cos)
