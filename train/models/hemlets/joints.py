"""HEMlets' 18-joint skeleton, its 14 parts, flip pairs and the map from the body's 24 joints.

The joint order is the official code's (``H36M_TO_J18`` plus joint 17 = shoulder midpoint,
shared/research/seed-hemlets-posh.md §1.4.2). The paper shows its K = 14 parts only in a figure
that is not in the text; hmrt's choice (docs/models/hemlets.md) is 14 of the official drawing
skeleton's 17 edges: the two edges through the synthetic joint 17 are dropped (the official
bone-length table omits them too), and so is neck/nose -> head top. Losses, target generation
and the model import these tables; nothing here depends on torch.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

NUM_JOINTS = 18
NUM_PARTS = 14
NUM_EVAL_JOINTS = 17
"""Evaluation uses joints 0..16 (the Human3.6M set); joint 17 is synthetic."""

HEMLETS_JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "spine", "thorax", "neck_nose", "head_top", "left_shoulder", "left_elbow", "left_wrist",
    "right_shoulder", "right_elbow", "right_wrist", "shoulder_mid",
)  # fmt: skip

HEMLETS_PARTS: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 3),  # pelvis -> right hip -> right knee -> right ankle
    (0, 4), (4, 5), (5, 6),  # pelvis -> left hip -> left knee -> left ankle
    (0, 7),  # pelvis -> spine (torso lean)
    (8, 9),  # thorax -> neck/nose (head facing)
    (8, 11), (11, 12), (12, 13),  # thorax -> left shoulder -> left elbow -> left wrist
    (8, 14), (14, 15), (15, 16),  # thorax -> right shoulder -> right elbow -> right wrist
)  # fmt: skip
"""The K = 14 skeletal parts as ``(parent, child)``, in HEMlets channel order (part k owns
channels ``3k .. 3k+2`` = ``T^-1, T^0, T^+1`` of the HEMlets block)."""

HEMLETS_FLIP_PAIRS: tuple[tuple[int, int], ...] = (
    (1, 4),
    (2, 5),
    (3, 6),
    (11, 14),
    (12, 15),
    (13, 16),
)
"""Left/right joint pairs swapped by a horizontal flip (official ``flip_pairs``)."""

DRAWING_EDGES: tuple[tuple[int, int], ...] = (
    (1, 0), (4, 0), (7, 0), (2, 1), (3, 2), (5, 4), (6, 5), (17, 7), (8, 17), (14, 8), (11, 8),
    (9, 8), (10, 9), (15, 14), (16, 15), (12, 11), (13, 12),
)  # fmt: skip
"""The official code's 17 ``(child, parent)`` drawing edges the 14 parts are chosen from."""


def flip_permutation() -> np.ndarray:
    """``(18,)`` joint index of each joint's mirror image (an involution)."""
    perm = np.arange(NUM_JOINTS)
    for a, b in HEMLETS_FLIP_PAIRS:
        perm[a], perm[b] = b, a
    return perm


def part_flip_permutation() -> np.ndarray:
    """``(14,)`` part index of each part's mirror image (flip the joints, find the part)."""
    perm = flip_permutation()
    index = {p: k for k, p in enumerate(HEMLETS_PARTS)}
    return np.array([index[(int(perm[p]), int(perm[c]))] for p, c in HEMLETS_PARTS])


def _body_to_hemlets_matrix() -> np.ndarray:
    """``(18, 24)`` affine weights (rows sum to 1) from SMPL-order body joints to HEMlets joints.

    Same-name joints are exact; the four the body lacks are approximations chosen against
    the bundled body's T-pose and the official average bone lengths (docs/models/hemlets.md):
    spine = ``spine2`` (233 mm above the pelvis, the official pelvis->spine length), thorax =
    ``neck`` (the base of the neck), neck/nose = ``head`` (the head joint, behind the nose at
    about its height: the bundled body's nose tip is 3 mm above it), head top = ``head + 1.2
    (head - neck)`` (an extrapolation, no body joint lies there: 115 mm above the head joint on
    the bundled body, the official nose->head length).
    """
    # SMPL indices: 0 pelvis, 1/2 L/R hip, 4/5 L/R knee, 6 spine2, 7/8 L/R ankle, 12 neck,
    # 15 head, 16/17 L/R shoulder, 18/19 L/R elbow, 20/21 L/R wrist.
    single = {0: 0, 1: 2, 2: 5, 3: 8, 4: 1, 5: 4, 6: 7, 7: 6, 8: 12, 9: 15,
              11: 16, 12: 18, 13: 20, 14: 17, 15: 19, 16: 21}  # fmt: skip
    w = np.zeros((NUM_JOINTS, 24), np.float64)
    for h, b in single.items():
        w[h, b] = 1.0
    w[10, 15], w[10, 12] = 2.2, -1.2  # head top: extrapolate neck -> head by 1.2x
    w[17, 16], w[17, 17] = 0.5, 0.5  # shoulder midpoint (the official definition)
    return w


BODY_TO_HEMLETS: np.ndarray = _body_to_hemlets_matrix()
"""``(18, 24)`` float64 weights: ``hemlets_joints = BODY_TO_HEMLETS @ body_joints``."""

BODY_TO_HEMLETS_APPROXIMATE: tuple[int, ...] = (7, 8, 9, 10)
"""HEMlets joints with no exact body counterpart (see :data:`BODY_TO_HEMLETS`)."""

A = TypeVar("A")


def body_to_hemlets(joints24: A) -> A:
    """Body joints ``(..., 24, D)`` (SMPL order) -> HEMlets joints ``(..., 18, D)``.

    Works on numpy arrays and torch tensors (same type, dtype and device out); any trailing
    coordinate dimension D (3D metres, 2D pixels). Affine weights, so translation-equivariant.
    """
    if isinstance(joints24, np.ndarray):
        weights = BODY_TO_HEMLETS.astype(
            joints24.dtype if joints24.dtype.kind == "f" else np.float64
        )
        return np.matmul(weights, joints24)
    import torch

    if isinstance(joints24, torch.Tensor):
        weights = torch.as_tensor(BODY_TO_HEMLETS, dtype=joints24.dtype, device=joints24.device)
        return torch.matmul(weights, joints24)
    raise TypeError(f"body_to_hemlets expects a numpy array or torch tensor, got {type(joints24)}")
