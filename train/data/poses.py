"""Anatomical joint limits, pose parameters and pose sampling for the 23 SMPL body joints.

No motion-capture data can be shipped (research/body-model-and-data.md §6.3), so poses come from
three sources mixed by :class:`PoseSampler`: hand-written key poses (:mod:`.key_poses`) with
noise, interpolations between two key poses, and draws inside per-joint limit boxes.

**Pose parameters** ``params`` are ``(..., 23, 3)`` float degrees, one row per body joint 1..23
in SMPL order (joint 0, the global orientation, is chosen by the scene, not here). A row is a
rotation vector ``(rx, ry, rz)`` about the axes of the SMPL rest (T-pose) frame carried by the
parent joint: **X = subject's left, Y = up, Z = forward** (the way the subject faces).
Exactly one component per joint is the *twist* about the rest bone axis (:data:`TWIST_AXIS`):
X for the arm chain, Z for the toes, Y for legs, spine and head. The joint's local rotation is
``R = exp(swing) @ exp(twist)`` with ``swing`` the other two components: the bone first spins
about its own axis, then swings away from the rest direction. Box limits on the three numbers
are then anatomical ranges (flexion, abduction, rotation).

Signs in this frame for the subject's **left** side and the centre (right-side joints are the
mirror image: their stored rows are ``(rx, -ry, -rz)`` of the anatomical left-convention value;
key poses are written in left convention for both sides and mirrored on build):

* hip: rx < 0 flexion (thigh forward), rz > 0 abduction, ry > 0 external rotation;
* knee: rx > 0 flexion; ankle: rx > 0 plantar flexion (toes down); toes: rx > 0 curl down;
* spine, neck, head: rx > 0 bend forward, rz > 0 bend towards the subject's right,
  ry > 0 turn towards the subject's left;
* collar: rz > 0 shrug up, ry < 0 forward; shoulder: rz > 0 raise (T-pose arm up towards
  the head), rz < 0 lower towards the side, ry < 0 forward, rx < 0 external rotation;
* elbow: ry < 0 flexion; wrist: rz < 0 palm-side flexion (T-pose palms face down).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from hmrt.runtime.rotations import axis_angle_to_matrix

JOINT_NAMES: tuple[str, ...] = (
    "Pelvis", "L_Hip", "R_Hip", "Spine1", "L_Knee", "R_Knee", "Spine2", "L_Ankle", "R_Ankle",
    "Spine3", "L_Foot", "R_Foot", "Neck", "L_Collar", "R_Collar", "Head", "L_Shoulder",
    "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist", "R_Wrist", "L_Hand", "R_Hand",
)  # fmt: skip
"""The 24 SMPL joints in SMPL order; :data:`BODY_JOINTS` are rows 1..23 of it."""

BODY_JOINTS: tuple[str, ...] = JOINT_NAMES[1:]
PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21,
)  # fmt: skip
FLIP_JOINT: np.ndarray = np.array(
    [
        JOINT_NAMES.index(n.replace("L_", "#").replace("R_", "L_").replace("#", "R_"))
        for n in JOINT_NAMES
    ]
)
"""Left/right joint permutation of the SMPL skeleton (the body asset carries the same table)."""

# Anatomical ranges for the left side and the centre, degrees, as (twist axis, x, y, z) ranges.
# Sources: typical adult active ranges of motion (e.g. AAOS tables); split over SMPL's three
# spine joints, generous where SMPL lumps several anatomical joints (collar, hand).
_LEFT_LIMITS: dict[str, tuple[int, tuple, tuple, tuple]] = {
    "Hip": (1, (-125, 25), (-40, 45), (-25, 50)),
    "Knee": (1, (-2, 150), (-10, 10), (-3, 3)),
    "Ankle": (1, (-25, 50), (-20, 20), (-25, 25)),
    "Foot": (2, (-40, 30), (-5, 5), (-5, 5)),
    "Spine1": (1, (-20, 40), (-15, 15), (-15, 15)),
    "Spine2": (1, (-15, 30), (-15, 15), (-15, 15)),
    "Spine3": (1, (-15, 30), (-15, 15), (-15, 15)),
    "Neck": (1, (-30, 40), (-35, 35), (-25, 25)),
    "Head": (1, (-30, 30), (-40, 40), (-20, 20)),
    "Collar": (0, (-10, 10), (-25, 15), (-10, 30)),
    "Shoulder": (0, (-100, 90), (-130, 45), (-95, 95)),
    "Elbow": (0, (-60, 60), (-150, 2), (-5, 5)),
    "Wrist": (0, (-40, 40), (-25, 35), (-70, 60)),
    "Hand": (0, (-10, 10), (-10, 10), (-45, 10)),
}

_MIRROR_SIGN = np.array([1.0, -1.0, -1.0])


def _build_limits() -> tuple[np.ndarray, np.ndarray]:
    lo, hi, twist = np.zeros((23, 3)), np.zeros((23, 3)), np.zeros(23, dtype=np.int64)
    for i, name in enumerate(BODY_JOINTS):
        key = name[2:] if name[:2] in ("L_", "R_") else name
        axis, *ranges = _LEFT_LIMITS[key]
        r = np.array(ranges, dtype=np.float64)  # (3, 2)
        if name.startswith("R_"):
            r = np.sort(r * _MIRROR_SIGN[:, None], axis=1)
        lo[i], hi[i], twist[i] = r[:, 0], r[:, 1], axis
    return np.stack([lo, hi]), twist


LIMITS_DEG, TWIST_AXIS = _build_limits()
"""``LIMITS_DEG`` (2, 23, 3): lower and upper bounds of the pose parameters in degrees;
``TWIST_AXIS`` (23,): which component (0 X, 1 Y, 2 Z) of each joint is the twist."""

_BODY_FLIP = FLIP_JOINT[1:] - 1  # permutation of the 23 body rows


def params_to_rotmats(params: np.ndarray) -> np.ndarray:
    """Pose parameters ``(..., 23, 3)`` degrees -> local rotation matrices ``(..., 23, 3, 3)``."""
    p = np.deg2rad(np.asarray(params, dtype=np.float64))
    twist_mask = np.eye(3)[TWIST_AXIS]  # (23, 3) one-hot
    twist = axis_angle_to_matrix(p * twist_mask)
    swing = axis_angle_to_matrix(p * (1.0 - twist_mask))
    return swing @ twist


def mirror_params(params: np.ndarray) -> np.ndarray:
    """The left/right mirror image of a pose: swap sides and reflect across the sagittal plane."""
    p = np.asarray(params, dtype=np.float64)
    return p[..., _BODY_FLIP, :] * _MIRROR_SIGN


def clip_params(params: np.ndarray) -> np.ndarray:
    """Clamp pose parameters into :data:`LIMITS_DEG`."""
    return np.clip(params, LIMITS_DEG[0], LIMITS_DEG[1])


def within_limits(params: np.ndarray, tol_deg: float = 1e-6) -> np.ndarray:
    """True where every parameter of a pose lies inside the limits (``(...,)`` bool)."""
    p = np.asarray(params)
    ok = (p >= LIMITS_DEG[0] - tol_deg) & (p <= LIMITS_DEG[1] + tol_deg)
    return ok.all(axis=(-2, -1))


def pose_from_spec(spec: Mapping[str, Sequence[float]]) -> np.ndarray:
    """Pose parameters from ``{joint name: (rx, ry, rz)}`` in the *left* (anatomical) convention.

    ``R_*`` entries are mirrored into the stored right-side convention, so ``{"L_Elbow": v,
    "R_Elbow": v}`` bends both elbows the same way. Unnamed joints stay at 0.
    """
    params = np.zeros((23, 3))
    for name, value in spec.items():
        v = np.asarray(value, dtype=np.float64)
        params[BODY_JOINTS.index(name)] = v * _MIRROR_SIGN if name.startswith("R_") else v
    return params


# --- self-intersection test -------------------------------------------------------------------
# Capsules between joints (index pairs) with radii in metres, for an adult of ~1.7 m. Cheap and
# approximate: it rejects limbs passing through each other or through the trunk, not skin contact.
_CAPSULES: dict[str, tuple[int, int, float]] = {
    "trunk": (0, 12, 0.10),
    "head": (12, 15, 0.09),
    "l_uparm": (16, 18, 0.04), "r_uparm": (17, 19, 0.04),
    "l_forearm": (18, 20, 0.035), "r_forearm": (19, 21, 0.035),
    "l_hand": (20, 22, 0.03), "r_hand": (21, 23, 0.03),
    "l_thigh": (1, 4, 0.07), "r_thigh": (2, 5, 0.07),
    "l_shin": (4, 7, 0.05), "r_shin": (5, 8, 0.05),
    "l_foot": (7, 10, 0.04), "r_foot": (8, 11, 0.04),
}  # fmt: skip
_ARM, _LEG, _HAND = ("uparm", "forearm", "hand"), ("thigh", "shin", "foot"), ("forearm", "hand")
_PAIRS: tuple[tuple[str, str], ...] = (
    *[(f"{s}_{p}", "trunk") for s in "lr" for p in _HAND],
    *[(f"{s}_{p}", "head") for s in "lr" for p in _ARM],
    *[(f"l_{p}", f"r_{q}") for p in _ARM for q in _ARM],
    *[(f"l_{p}", f"r_{q}") for p in _LEG for q in _LEG],
    *[
        (f"{s}_{p}", f"{t}_{q}")
        for s in "lr"
        for t in "lr"
        for p in _HAND
        for q in ("shin", "foot")
    ],
    *[(f"{s}_{p}", "trunk") for s in "lr" for p in ("shin", "foot")],
)


def _segment_distance(p0, p1, q0, q1) -> np.ndarray:
    """Closest distance between segments p0-p1 and q0-q1 (arrays (..., 3)), clamped params."""
    d1, d2, r = p1 - p0, q1 - q0, p0 - q0
    a = (d1 * d1).sum(-1)
    e = (d2 * d2).sum(-1)
    f = (d2 * r).sum(-1)
    c = (d1 * r).sum(-1)
    b = (d1 * d2).sum(-1)
    denom = np.maximum(a * e - b * b, 1e-12)
    s = np.clip((b * f - c * e) / denom, 0.0, 1.0)
    t = np.clip((b * s + f) / np.maximum(e, 1e-12), 0.0, 1.0)
    s = np.clip((b * t - c) / np.maximum(a, 1e-12), 0.0, 1.0)
    return np.linalg.norm(p0 + d1 * s[..., None] - q0 - d2 * t[..., None], axis=-1)


def self_collision(joints: np.ndarray, overlap: float = 0.6) -> bool:
    """True when two non-adjacent body capsules interpenetrate.

    ``joints`` (24, 3) posed joint positions in metres (any frame). Two capsules collide when
    their axes come closer than ``overlap * (r1 + r2)``; ``overlap < 1`` lets skin touch
    (hands on thighs, arms crossed) and only rejects limbs passing through each other.
    """
    j = np.asarray(joints, dtype=np.float64)
    a_idx = [_CAPSULES[a] for a, _ in _PAIRS]
    b_idx = [_CAPSULES[b] for _, b in _PAIRS]
    a0, a1, ra = (np.array(x) for x in zip(*a_idx))
    b0, b1, rb = (np.array(x) for x in zip(*b_idx))
    d = _segment_distance(j[a0], j[a1], j[b0], j[b1])
    return bool(np.any(d < overlap * (ra + rb)))


class PoseSampler:
    """Random body poses: key pose + noise, blends of two key poses, or limit-box draws.

    ``mix`` gives the probabilities of the three modes; ``noise`` is the Gaussian noise per joint
    as a fraction of the joint's range (0.06 of a 180-degree shoulder range is ~11 degrees);
    ``box_strength`` is how far a box draw may move from its key pose towards a uniform point
    of the limit box. Half of all poses are mirrored left/right. Output is clipped to limits.
    """

    def __init__(
        self,
        library: Mapping[str, np.ndarray] | None = None,
        mix: tuple[float, float, float] = (0.45, 0.35, 0.2),
        noise: float = 0.06,
        box_strength: float = 0.5,
    ):
        if library is None:
            from hmrt.train.data.key_poses import KEY_POSES

            library = KEY_POSES
        self.names = tuple(library)
        self.library = np.stack([np.asarray(library[n], dtype=np.float64) for n in self.names])
        p = np.asarray(mix, dtype=np.float64)
        self.mix = p / p.sum()
        self.noise_deg = noise * (LIMITS_DEG[1] - LIMITS_DEG[0])
        self.box_strength = box_strength

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """One pose ``(23, 3)`` degrees."""
        mode = rng.choice(3, p=self.mix)
        base = self.library[rng.integers(len(self.names))]
        if mode == 1:
            other = self.library[rng.integers(len(self.names))]
            base = base + rng.uniform() * (other - base)
        elif mode == 2:
            box = rng.uniform(LIMITS_DEG[0], LIMITS_DEG[1])
            lam = rng.uniform(0.0, self.box_strength, size=(23, 1))
            base = base + lam * (box - base)
        pose = base + rng.normal(size=(23, 3)) * self.noise_deg
        if rng.uniform() < 0.5:
            pose = mirror_params(pose)
        return clip_params(pose)
