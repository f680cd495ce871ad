"""A tiny synthetic body model in the hmrt npz layout, for tests that must not need the asset.

``synthetic_body_arrays()`` builds ~500 vertices as tubes along the 24-joint SMPL skeleton
(T-pose, metres, Y up, subject's left +X), skinned to the bones, with random shape (and
optionally pose-corrective) bases; the geometry is exactly left/right symmetric so the flip maps
are real. ``write_synthetic_body(path)`` saves it as a plain-array npz.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hmrt.runtime.body.layout import SMPL_JOINT_NAMES, SMPL_PARENTS

# Rest joints of a ~1.7 m T-posed body, pelvis at the origin; right side = left with x negated.
REST_JOINTS = np.array(
    [
        [0.00, 0.00, 0.00], [0.09, -0.08, 0.00], [-0.09, -0.08, 0.00], [0.00, 0.11, -0.01],
        [0.10, -0.47, 0.00], [-0.10, -0.47, 0.00], [0.00, 0.24, 0.00], [0.10, -0.88, -0.03],
        [-0.10, -0.88, -0.03], [0.00, 0.30, 0.02], [0.11, -0.93, 0.10], [-0.11, -0.93, 0.10],
        [0.00, 0.50, -0.01], [0.07, 0.41, -0.01], [-0.07, 0.41, -0.01], [0.00, 0.58, 0.04],
        [0.17, 0.44, -0.02], [-0.17, 0.44, -0.02], [0.43, 0.43, -0.03], [-0.43, 0.43, -0.03],
        [0.69, 0.43, -0.02], [-0.69, 0.43, -0.02], [0.77, 0.42, -0.03], [-0.77, 0.42, -0.03],
    ]
)  # fmt: skip
FLIP_JOINT = np.array(
    [0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20, 23, 22]
)
LEAVES = (10, 11, 15, 22, 23)
RING = 6
STATIONS = (0.15, 0.5, 0.85)


def _tube(start: np.ndarray, end: np.ndarray, radius: float) -> np.ndarray:
    """Rings of RING points around the segment start -> end, (len(STATIONS) * RING, 3)."""
    axis = (end - start) / np.linalg.norm(end - start)
    ref = np.array([0.0, 0.0, 1.0]) if abs(axis[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    u = ref - (ref @ axis) * axis
    u /= np.linalg.norm(u)
    w = np.cross(axis, u)
    angles = 2 * np.pi * np.arange(RING) / RING
    ring = radius * (np.cos(angles)[:, None] * u + np.sin(angles)[:, None] * w)
    return np.concatenate([start + t * (end - start) + ring for t in STATIONS])


def synthetic_body_arrays(seed: int = 0, posedirs: bool = False, surface: bool = True) -> dict:
    """Arrays of a small valid body model (SMPL tree, 10 betas); see the module docstring."""
    rng = np.random.default_rng(seed)
    verts, faces, weights = [], [], []
    bones = [(SMPL_PARENTS[i], i) for i in range(1, 24)]
    bones += [(leaf, -1) for leaf in LEAVES]  # end caps beyond the leaf joints
    for p, c in bones:
        start = REST_JOINTS[p]
        if c >= 0:
            end = REST_JOINTS[c]
        else:
            d = REST_JOINTS[p] - REST_JOINTS[SMPL_PARENTS[p]]
            end = start + 0.08 * d / np.linalg.norm(d)
        base = sum(len(v) for v in verts)
        verts.append(_tube(start, end, 0.04))
        for s in range(len(STATIONS) - 1):
            for k in range(RING):
                a, b = base + s * RING + k, base + s * RING + (k + 1) % RING
                faces += [[a, b, b + RING], [a, b + RING, a + RING]]
        w = np.zeros((len(STATIONS) * RING, 24))
        t = np.repeat(STATIONS, RING)
        if c >= 0:  # blend towards the child joint near the end of the bone
            w[:, p], w[:, c] = 1.0 - 0.4 * t, 0.4 * t
        else:
            w[:, p] = 1.0
        weights.append(w)
    v_template = np.concatenate(verts)
    n_verts = len(v_template)
    weights = np.concatenate(weights)
    noise = rng.random((n_verts, 24)) * (rng.random((n_verts, 24)) < 0.1) * 0.05
    weights = weights + noise
    weights /= weights.sum(1, keepdims=True)
    regressor = np.zeros((24, n_verts))
    for j in range(24):
        near = np.argsort(np.linalg.norm(v_template - REST_JOINTS[j], axis=1))[:8]
        regressor[j, near] = rng.random(8) + 0.5
    regressor /= regressor.sum(1, keepdims=True)
    shapedirs = rng.normal(0.0, 0.01, (n_verts, 3, 10))
    shapedirs[:, :, 0] += 0.05 * v_template  # beta 0 ~ overall size, like SMPL's first PC
    kintree = np.stack([np.array(SMPL_PARENTS), np.arange(24)]).astype(np.int64)
    kintree[0, 0] = 2**32 - 1  # as stored in SMPL files
    arrays = {
        "v_template": v_template.astype(np.float32),
        "shapedirs": shapedirs.astype(np.float32),
        "posedirs": (
            rng.normal(0.0, 0.003, (n_verts, 3, 207)) if posedirs else np.zeros((n_verts, 3, 207))
        ).astype(np.float32),
        "J_regressor": regressor.astype(np.float32),
        "weights": weights.astype(np.float32),
        "kintree_table": kintree,
        "f": np.array(faces, np.int32),
        "joint_names": np.array(SMPL_JOINT_NAMES),
        "licence": np.array("synthetic test body (CC0)"),
        "provenance": np.array("tests/body_helpers.py"),
    }
    if surface:
        n_faces = len(faces)
        mirrored = v_template * np.array([-1.0, 1.0, 1.0])
        dist = np.linalg.norm(mirrored[:, None] - v_template[None], axis=2)
        arrays |= {
            "vt": rng.random((n_verts, 2)).astype(np.float32),
            "ft": arrays["f"].copy(),
            "dp_I": rng.integers(1, 25, n_faces).astype(np.uint8),
            "dp_uv": rng.random((n_faces, 3, 2)).astype(np.float32),
            "cont_vt": rng.random((n_verts, 2)).astype(np.float32),
            "cont_ft": arrays["f"].copy(),
            "cont_v2vt": np.arange(n_verts, dtype=np.int32),
            "flip_vertex": dist.argmin(1).astype(np.int32),
            "flip_joint": FLIP_JOINT.astype(np.int32),
        }
    return arrays


def write_synthetic_body(path: str | Path, **kwargs) -> Path:
    """Save :func:`synthetic_body_arrays` (same keyword arguments) as an npz; returns the path."""
    path = Path(path)
    np.savez_compressed(path, **synthetic_body_arrays(**kwargs))
    return path


def random_rotmats(n: int, n_joints: int = 24, seed: int = 0, scale: float = 0.6) -> np.ndarray:
    """Random rotations ``(n, n_joints, 3, 3)`` float32, angles ~ N(0, scale) per axis."""
    from hmrt.runtime.rotations import axis_angle_to_matrix

    rng = np.random.default_rng(seed)
    return axis_angle_to_matrix(rng.normal(0.0, scale, (n, n_joints, 3))).astype(np.float32)
