"""HKMR's six kinematic chains over the SMPL tree, and the chain-order <-> SMPL-order maps.

shared/research/seed-hkmr.md §1.3: the root chain (pelvis, spine1, spine2, spine3; 12-D) is the
paper's; the other five follow from SMPL's parent array (every child of spine3 and of the pelvis
starts a chain). Joints are listed proximal -> distal, the order of a forward pass. The pose
vector Θ is concatenated in chain order (root, head, right arm, left arm, right leg, left leg),
as the paper writes it; one constant gather puts it back into SMPL order. Nothing here depends
on torch.
"""

from __future__ import annotations

import numpy as np

NUM_JOINTS = 24
NUM_BETAS = 10

CHAINS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("root", (0, 3, 6, 9)),  # pelvis (global orientation), spine1, spine2, spine3 [paper]
    ("head", (12, 15)),  # neck, head
    ("right_arm", (14, 17, 19, 21, 23)),  # collar, shoulder, elbow, wrist, hand
    ("left_arm", (13, 16, 18, 20, 22)),
    ("right_leg", (2, 5, 8, 11)),  # hip, knee, ankle, foot
    ("left_leg", (1, 4, 7, 10)),
)
"""``(name, SMPL joint indices proximal -> distal)`` in the paper's concatenation order."""

ROOT = CHAINS[0][0]
CHAIN_NAMES: tuple[str, ...] = tuple(name for name, _ in CHAINS)

CHAIN_ORDER: np.ndarray = np.array([j for _, joints in CHAINS for j in joints], dtype=np.int64)
"""``(24,)`` SMPL joint index of each chain-order slot: ``pose_chain = pose_smpl[CHAIN_ORDER]``."""

SMPL_FROM_CHAIN: np.ndarray = np.argsort(CHAIN_ORDER)
"""``(24,)`` chain-order slot of each SMPL joint: ``pose_smpl = pose_chain[SMPL_FROM_CHAIN]``."""

SMPL_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
"""SMPL's kinematic tree (the body model's ``kintree_table[0]``), for checks."""


def chain_slices() -> dict[str, slice]:
    """Chain name -> its slice of the 72-D chain-order pose vector."""
    out, start = {}, 0
    for name, joints in CHAINS:
        out[name] = slice(start, start + 3 * len(joints))
        start += 3 * len(joints)
    return out
