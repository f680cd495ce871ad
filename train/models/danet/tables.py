"""DaNet's constant per-joint tables (SMPL joint order), from the official code.

Values as listed in shared/research/seed-danet.md §1.4, §1.9 and §6.3 (read from
``utils/smpl_utlis.py``, ``data/pretrained_model/learned_ratio.pkl`` and ``utils/graph.py`` of
HongwenZhang/DaNet-3DHumanReconstruction). DensePose part ids: 1..24, 0 = background.
"""

from __future__ import annotations

import numpy as np

NUM_JOINTS = 24
NUM_PARTS = 24  # DensePose surface parts; IUV maps have 1 + NUM_PARTS channels

# Parent of each joint (the root is its own parent) and the child used for the RoI scale
# (leaves point to themselves, so their child distance is 0).
PARENTS = (0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
CHILDREN = (3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 10, 11, 15, 16, 17, 15, 18, 19, 20, 21, 22, 23, 22, 23)

# DensePose parts kept in each joint's partial IUV map (after the background channel);
# duplicates are as in the official table.
DP2SMPL_MAPPING = (
    (7, 8, 9, 10, 1, 2),
    (1, 2, 8, 10, 12, 14),
    (1, 2, 7, 9, 11, 13),
    (7, 8, 9, 10, 1, 2),
    (1, 2, 8, 10, 12, 14),
    (1, 2, 7, 9, 11, 13),
    (7, 8, 9, 10, 1, 2),
    (8, 10, 12, 14, 5, 5),
    (7, 9, 11, 13, 6, 6),
    (7, 8, 9, 10, 1, 2),
    (8, 10, 12, 14, 5, 5),
    (7, 9, 11, 13, 6, 6),
    (1, 2, 23, 24, 23, 24),
    (1, 2, 15, 17, 19, 21),
    (1, 2, 16, 18, 20, 22),
    (1, 2, 23, 24, 23, 24),
    (1, 2, 15, 17, 19, 21),
    (1, 2, 16, 18, 20, 22),
    (1, 2, 15, 17, 19, 21),
    (1, 2, 16, 18, 20, 22),
    (15, 17, 19, 21, 4, 4),
    (16, 18, 20, 22, 3, 3),
    (15, 17, 19, 21, 4, 4),
    (16, 18, 20, 22, 3, 3),
)

# Each joint's "own" parts: a joint whose centre is on none of them is hidden (RoI fallback).
SMPL2DP_PART = (
    (1, 2),
    (8, 10),
    (7, 9),
    (1, 2),
    (8, 10, 12, 14),
    (7, 9, 11, 13),
    (1, 2),
    (12, 14, 5),
    (11, 13, 6),
    (1, 2),
    (12, 14, 5),
    (11, 13, 6),
    (1, 2, 23, 24),
    (15, 17),
    (16, 18),
    (23, 24),
    (15, 17),
    (16, 18),
    (15, 17, 19, 21),
    (16, 18, 20, 22),
    (19, 21, 4),
    (20, 22, 3),
    (19, 21, 4),
    (20, 22, 3),
)

# Per-joint RoI scale ratio and offset (official ``learned_ratio.pkl``; relu is applied in use).
LEARNED_RATIO = (
    0.6827, 1.2051, 1.1849, 1.3892, 1.0950, 1.0947, 1.6018, 1.0222, 1.0536, 0.8735, 0.3583, 0.4439,
    1.0156, 1.2464, 1.2582, 0.5803, 1.1734, 1.2033, 1.1979, 1.2043, 0.8485, 0.8552, 0.4633, 0.3972,
)  # fmt: skip
LEARNED_OFFSET = (
    0.0911, 0.0230, 0.0226, 0.2006, 0.0143, 0.0165, 0.1103, 0.0610, 0.0614, 0.1661, 0.7373, 0.7548,
    0.0783, 0.1532, 0.1497, 0.2524, 0.0638, 0.0635, 0.0465, 0.0466, 0.0601, 0.0549, 0.2172, 0.2141,
)  # fmt: skip

# Undirected edges of the refinement graph's mask (every pair at tree distance <= 2 plus the
# neck-shoulder links (12,16), (12,17)): 51 edges.
REFINE_EDGES = (
    (0, 1), (0, 2), (0, 3), (0, 4), (0, 5), (0, 6), (1, 2), (1, 3), (1, 4), (1, 7), (2, 3),
    (2, 5), (2, 8), (3, 6), (3, 9), (4, 7), (4, 10), (5, 8), (5, 11), (6, 9), (6, 12), (6, 13),
    (6, 14), (7, 10), (8, 11), (9, 12), (9, 13), (9, 14), (9, 15), (9, 16), (9, 17), (12, 13),
    (12, 14), (12, 15), (12, 16), (12, 17), (13, 14), (13, 16), (13, 18), (14, 17), (14, 19),
    (16, 18), (16, 20), (17, 19), (17, 21), (18, 20), (18, 22), (19, 21), (19, 23), (20, 22),
    (21, 23),
)  # fmt: skip

# Coarse 15-class segmentation (background + 14) as unions of DensePose parts (training aux).
ANN_GROUPS = (
    (0,), (1, 2), (3,), (4,), (5,), (6,), (7, 9), (8, 10), (11, 13), (12, 14), (15, 17), (16, 18),
    (19, 21), (20, 22), (23, 24),
)  # fmt: skip


def partial_part_table() -> np.ndarray:
    """``(24, 7)`` DensePose part id of each partial-IUV channel; channel 0 is background (0)."""
    return np.array([(0, *parts) for parts in DP2SMPL_MAPPING], dtype=np.int64)


def own_part_matrix() -> np.ndarray:
    """``(24, 25)`` 0/1 matrix: joint k's own parts (over IUV channels incl. background)."""
    m = np.zeros((NUM_JOINTS, NUM_PARTS + 1), dtype=np.float32)
    for k, parts in enumerate(SMPL2DP_PART):
        m[k, list(parts)] = 1.0
    return m


def ancestors(joint: int) -> list[int]:
    """Strict ancestors of ``joint`` up to the root (empty for the root)."""
    chain = []
    while joint != 0:
        joint = PARENTS[joint]
        chain.append(joint)
    return chain


def row_normalise(a: np.ndarray) -> np.ndarray:
    """``D^-1 A`` with row sums (all-zero rows stay zero), official ``normalize_digraph``."""
    rows = a.sum(axis=1, keepdims=True)
    return np.divide(a, rows, out=np.zeros_like(a), where=rows > 0)


def r2p_adjacency() -> np.ndarray:
    """Rotation -> position graph ``(24, 24)``: row i averages the ancestors of joint i."""
    a = np.zeros((NUM_JOINTS, NUM_JOINTS), dtype=np.float64)
    for i in range(NUM_JOINTS):
        a[i, ancestors(i)] = 1.0
    return row_normalise(a).astype(np.float32)


def p2r_adjacency() -> np.ndarray:
    """Position -> rotation graph ``(24, 24)``: row i averages i, its parent and its children."""
    a = np.eye(NUM_JOINTS, dtype=np.float64)
    for i in range(1, NUM_JOINTS):
        a[i, PARENTS[i]] = 1.0
        a[PARENTS[i], i] = 1.0
    return row_normalise(a).astype(np.float32)


def refine_mask() -> np.ndarray:
    """``(24, 24)`` symmetric 0/1 mask of :data:`REFINE_EDGES` (zero diagonal)."""
    m = np.zeros((NUM_JOINTS, NUM_JOINTS), dtype=np.float32)
    for i, j in REFINE_EDGES:
        m[i, j] = m[j, i] = 1.0
    return m
