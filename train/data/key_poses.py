"""Hand-written key poses (standing, walking, running, sitting, crouching, reaching, ...).

Each pose is written as ``{joint: (rx, ry, rz)}`` degrees in the anatomical left convention of
:mod:`hmrt.train.data.poses` (both sides bend the same way for the same numbers) and built with
:func:`~hmrt.train.data.poses.pose_from_spec`. Poses named ``*_L`` have a mirrored ``*_R`` twin.
:data:`WALK_CYCLE` and :data:`RUN_CYCLE` list key poses in temporal order for smooth clips.
"""

from __future__ import annotations

import numpy as np

from hmrt.train.data.poses import mirror_params, pose_from_spec

_ARMS_DOWN = {"L_Shoulder": (0, 0, -72), "R_Shoulder": (0, 0, -72)}
_ELBOWS_SOFT = {"L_Elbow": (0, -10, 0), "R_Elbow": (0, -10, 0)}


def _both(joint: str, value: tuple[float, float, float]) -> dict:
    return {f"L_{joint}": value, f"R_{joint}": value}


_SPECS: dict[str, dict] = {
    "t_pose": {},
    "a_pose": {**_both("Shoulder", (0, 0, -45))},
    "stand": {**_ARMS_DOWN, **_ELBOWS_SOFT, **_both("Knee", (3, 0, 0))},
    "stand_relaxed_L": {
        **_ARMS_DOWN, **_ELBOWS_SOFT,
        "L_Hip": (-4, 12, 6), "R_Hip": (3, -5, 2), "R_Knee": (10, 0, 0), "L_Knee": (2, 0, 0),
        "Spine1": (0, 0, 4), "Spine3": (0, 0, -3), "Head": (4, 10, -4),
    },
    "hands_on_hips": {
        **_both("Shoulder", (90, 5, -45)), **_both("Elbow", (0, -90, 0)),
        **_both("Knee", (3, 0, 0)), **_both("Hip", (0, 0, 4)),
    },
    "walk_contact_L": {
        "L_Hip": (-25, 0, 2), "L_Knee": (5, 0, 0), "L_Ankle": (-10, 0, 0),
        "R_Hip": (12, 0, 2), "R_Knee": (15, 0, 0), "R_Ankle": (20, 0, 0),
        "L_Shoulder": (0, 20, -75), "R_Shoulder": (0, -25, -75),
        "L_Elbow": (0, -15, 0), "R_Elbow": (0, -30, 0),
        "Spine1": (3, 0, 0), "Spine2": (0, -4, 0), "Spine3": (0, -4, 0), "Head": (0, 6, 0),
    },
    "walk_passing_L": {
        "L_Hip": (-2, 0, 0), "L_Knee": (8, 0, 0), "L_Ankle": (0, 0, 0),
        "R_Hip": (-22, 0, 2), "R_Knee": (55, 0, 0), "R_Ankle": (-5, 0, 0),
        "L_Shoulder": (0, 0, -75), "R_Shoulder": (0, -5, -75),
        "L_Elbow": (0, -20, 0), "R_Elbow": (0, -20, 0), "Spine1": (3, 0, 0),
    },
    "run_L": {
        "L_Hip": (-55, 0, 3), "L_Knee": (70, 0, 0), "L_Ankle": (-5, 0, 0),
        "R_Hip": (20, 0, 3), "R_Knee": (80, 0, 0), "R_Ankle": (30, 0, 0),
        "L_Shoulder": (0, 40, -70), "R_Shoulder": (0, -45, -70),
        **_both("Elbow", (0, -95, 0)),
        "Spine1": (10, 0, 0), "Spine2": (5, -8, 0), "Head": (-5, 8, 0),
    },
    "sit_chair": {
        **_both("Hip", (-88, 0, 6)), **_both("Knee", (88, 0, 0)),
        **_both("Shoulder", (0, -25, -70)), **_both("Elbow", (0, -55, 0)),
        "Spine1": (-5, 0, 0), "Head": (5, 0, 0),
    },
    "sit_floor_knees_up": {
        **_both("Hip", (-110, 0, 15)), **_both("Knee", (120, 0, 0)), **_both("Ankle", (-10, 0, 0)),
        **_both("Shoulder", (0, 35, -70)), **_both("Elbow", (0, -5, 0)), "Spine1": (-5, 0, 0),
    },
    "sit_floor_legs_out": {
        **_both("Hip", (-90, 0, 5)), **_both("Knee", (2, 0, 0)), **_both("Ankle", (10, 0, 0)),
        **_both("Shoulder", (0, 40, -70)), **_both("Elbow", (0, -5, 0)), "Spine1": (-8, 0, 0),
    },
    "squat": {
        **_both("Hip", (-115, 15, 20)), **_both("Knee", (135, 0, 0)),
        **_both("Ankle", (-25, 0, 0)), "Spine1": (25, 0, 0), "Spine2": (10, 0, 0),
        **_both("Shoulder", (0, -70, -30)), **_both("Elbow", (0, -20, 0)), "Head": (-15, 0, 0),
    },
    "crouch": {
        **_both("Hip", (-90, 5, 12)), **_both("Knee", (110, 0, 0)), **_both("Ankle", (-20, 0, 0)),
        "Spine1": (20, 0, 0), "Spine2": (10, 0, 0), "Spine3": (5, 0, 0), "Head": (-20, 0, 0),
        **_both("Shoulder", (0, -45, -55)), **_both("Elbow", (0, -30, 0)),
    },
    "kneel": {
        **_both("Hip", (-5, 0, 3)), **_both("Knee", (95, 0, 0)), **_both("Ankle", (40, 0, 0)),
        **_ARMS_DOWN, **_ELBOWS_SOFT,
    },
    "kneel_one_L": {
        "L_Hip": (-85, 0, 5), "L_Knee": (85, 0, 0), "R_Hip": (5, 0, 3), "R_Knee": (95, 0, 0),
        "R_Ankle": (40, 0, 0), "L_Shoulder": (0, -30, -70), "L_Elbow": (0, -60, 0),
        "R_Shoulder": (0, 0, -72), "R_Elbow": (0, -10, 0), "Spine1": (10, 0, 0),
    },
    "lunge_L": {
        "L_Hip": (-75, 0, 5), "L_Knee": (80, 0, 0), "R_Hip": (25, 0, 3), "R_Knee": (25, 0, 0),
        "R_Ankle": (-10, 0, 0), **_both("Shoulder", (90, 5, -45)), **_both("Elbow", (0, -90, 0)),
    },
    "reach_forward_L": {
        "L_Shoulder": (0, -85, -5), "L_Elbow": (0, -5, 0), "R_Shoulder": (0, 0, -72),
        "R_Elbow": (0, -10, 0), "Spine1": (10, 0, 0), "Spine2": (5, -10, 0),
    },
    "reach_up_L": {
        "L_Shoulder": (0, -10, 80), "L_Elbow": (0, -5, 0), "R_Shoulder": (0, 0, -72),
        "R_Elbow": (0, -10, 0), "Spine2": (0, 0, 5), "Head": (-15, 0, 0),
    },
    "wave_L": {
        "L_Shoulder": (-90, -10, -5), "L_Elbow": (0, -95, 0), "L_Wrist": (0, 0, 10),
        "R_Shoulder": (0, 0, -72), "R_Elbow": (0, -10, 0), "Head": (0, 10, 0),
    },
    "arms_up": {**_both("Shoulder", (0, -10, 75)), **_both("Elbow", (0, -10, 0))},
    "arms_out_front": {**_both("Shoulder", (0, -80, -10)), **_both("Elbow", (0, -5, 0))},
    "arms_crossed": {
        "L_Shoulder": (30, -50, -70), "L_Elbow": (0, -70, 0),
        "R_Shoulder": (30, -65, -70), "R_Elbow": (0, -80, 0),
    },
    "phone_L": {
        "L_Shoulder": (30, -15, -70), "L_Elbow": (0, -130, 0), "R_Shoulder": (0, 0, -72),
        "R_Elbow": (0, -10, 0), "Head": (25, 0, 0), "Neck": (15, 0, 0),
    },
    "bend_over": {
        "Spine1": (35, 0, 0), "Spine2": (25, 0, 0), "Spine3": (15, 0, 0),
        **_both("Hip", (-45, 0, 3)), **_both("Knee", (10, 0, 0)),
        **_both("Shoulder", (0, -70, 25)), **_both("Elbow", (0, -10, 0)),
    },
    "jumping_jack": {**_both("Shoulder", (0, 0, 55)), **_both("Hip", (0, 0, 25))},
    "throw_L": {
        "L_Shoulder": (-60, 20, 40), "L_Elbow": (0, -90, 0), "R_Shoulder": (0, -60, -20),
        "R_Elbow": (0, -20, 0), "Spine1": (0, -10, 0), "Spine2": (0, -15, 0),
        "L_Hip": (10, 0, 3), "R_Hip": (-30, 0, 5), "R_Knee": (20, 0, 0),
    },
    "boxing_guard": {
        **_both("Shoulder", (-20, -65, -65)), **_both("Elbow", (0, -115, 0)),
        **_both("Hip", (-10, 0, 5)), **_both("Knee", (15, 0, 0)), "Spine1": (10, 0, 0),
    },
    "punch_L": {
        "L_Shoulder": (0, -85, -10), "L_Elbow": (0, -10, 0),
        "R_Shoulder": (-20, -65, -65), "R_Elbow": (0, -115, 0),
        "Spine2": (0, -12, 0), "Spine3": (0, -8, 0), **_both("Knee", (12, 0, 0)),
    },
    "kick_L": {
        "L_Hip": (-70, 0, 0), "L_Knee": (20, 0, 0), "L_Ankle": (30, 0, 0), "R_Knee": (10, 0, 0),
        "Spine1": (-10, 0, 0), **_both("Shoulder", (0, 0, -50)),
    },
    "side_stretch_L": {
        "L_Shoulder": (0, 0, 85), "R_Shoulder": (0, 0, -72), "R_Elbow": (0, -10, 0),
        "Spine1": (0, 0, 12), "Spine2": (0, 0, 12), "Spine3": (0, 0, 10),
    },
    "balance_L": {
        "R_Hip": (-80, 0, 10), "R_Knee": (100, 0, 0), "R_Ankle": (20, 0, 0),
        **_both("Shoulder", (0, 0, -10)),
    },
    "look_back_L": {
        **_ARMS_DOWN, **_ELBOWS_SOFT, "Head": (0, 40, 0), "Neck": (0, 25, 0), "Spine3": (0, 12, 0),
    },
    "carry": {
        **_both("Shoulder", (0, -15, -75)), **_both("Elbow", (0, -90, 0)), "Spine1": (-5, 0, 0),
    },
}  # fmt: skip


def _build() -> dict[str, np.ndarray]:
    poses = {}
    for name, spec in _SPECS.items():
        poses[name] = pose_from_spec(spec)
        if name.endswith("_L"):
            poses[name[:-2] + "_R"] = mirror_params(poses[name])
    return poses


KEY_POSES: dict[str, np.ndarray] = _build()
"""Key pose name -> pose parameters (23, 3) degrees."""

WALK_CYCLE: tuple[str, ...] = (
    "walk_contact_L",
    "walk_passing_L",
    "walk_contact_R",
    "walk_passing_R",
)
"""One walking stride (left heel strike, left stance, right heel strike, right stance)."""

RUN_CYCLE: tuple[str, ...] = ("run_L", "run_R")
