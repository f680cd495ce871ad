"""Joint limits, key poses and the pose sampler: limits hold and the poses look like their names."""

from __future__ import annotations

import numpy as np
import pytest
from data_helpers import real_body_path, write_parts_body

from hmrt.runtime.body import BodyModel
from hmrt.train.data import poses as P
from hmrt.train.data.key_poses import KEY_POSES, WALK_CYCLE

J = {n: i for i, n in enumerate(P.JOINT_NAMES)}


def _bodies(tmp_path_factory) -> list[BodyModel]:
    bodies = [BodyModel(write_parts_body(tmp_path_factory.mktemp("body") / "tiny.npz"))]
    if real_body_path() is not None:
        bodies.append(BodyModel(real_body_path()))
    return bodies


@pytest.fixture(scope="module")
def bodies(tmp_path_factory):
    return _bodies(tmp_path_factory)


def _joints(body: BodyModel, name: str) -> np.ndarray:
    """Posed joints in the body frame (Y up, facing +Z) for a key pose."""
    rot = np.concatenate([np.eye(3)[None], P.params_to_rotmats(KEY_POSES[name])])
    _, joints = body.forward(rot[None].astype(np.float32))
    return joints[0].astype(np.float64)


def test_limits_are_ordered_and_mirrored():
    lo, hi = P.LIMITS_DEG
    assert lo.shape == hi.shape == (23, 3)
    assert np.all(lo < hi)
    left = [i for i, n in enumerate(P.BODY_JOINTS) if n.startswith("L_")]
    for i in left:
        r = P.BODY_JOINTS.index("R_" + P.BODY_JOINTS[i][2:])
        # Mirror: X ranges equal, Y and Z ranges negated and swapped.
        np.testing.assert_allclose([lo[r, 0], hi[r, 0]], [lo[i, 0], hi[i, 0]])
        np.testing.assert_allclose([lo[r, 1:], hi[r, 1:]], [-hi[i, 1:], -lo[i, 1:]])
    # Knee and elbow are hinges: one large range, the others small.
    knee = P.BODY_JOINTS.index("L_Knee")
    assert hi[knee, 0] >= 140 and np.all(np.ptp(P.LIMITS_DEG[:, knee, 1:], axis=0) <= 20)


def test_key_poses_within_limits_and_mirror_is_an_involution():
    assert len(KEY_POSES) >= 20
    for name, params in KEY_POSES.items():
        assert params.shape == (23, 3)
        assert P.within_limits(params), name
        np.testing.assert_allclose(P.mirror_params(P.mirror_params(params)), params)
    np.testing.assert_allclose(P.mirror_params(KEY_POSES["wave_L"]), KEY_POSES["wave_R"])
    rot = P.params_to_rotmats(np.stack(list(KEY_POSES.values())))
    eye = np.broadcast_to(np.eye(3), rot.shape)
    np.testing.assert_allclose(rot @ np.swapaxes(rot, -1, -2), eye, atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-9)


def test_key_poses_look_right(bodies):
    for body in bodies:
        stand = _joints(body, "stand")
        for foot in ("L_Ankle", "R_Ankle", "L_Foot", "R_Foot"):
            assert stand[J[foot], 1] < stand[J["Pelvis"], 1] - 0.6
        for side in "LR":
            assert stand[J[f"{side}_Wrist"], 1] < stand[J[f"{side}_Shoulder"], 1] - 0.35
        assert stand[J["L_Wrist"], 0] > 0 > stand[J["R_Wrist"], 0]  # left is +X

        sit = _joints(body, "sit_chair")
        for side in "LR":
            thigh = sit[J[f"{side}_Knee"]] - sit[J[f"{side}_Hip"]]
            angle = np.degrees(np.arccos(-thigh[1] / np.linalg.norm(thigh)))
            assert 75 < angle < 105, angle  # hips flexed ~90 degrees
            assert thigh[2] > 0  # knees in front (+Z)
            shin = sit[J[f"{side}_Ankle"]] - sit[J[f"{side}_Knee"]]
            assert shin[1] < -0.8 * np.linalg.norm(shin)  # shins hang down

        wave = _joints(body, "wave_L")
        assert wave[J["L_Wrist"], 1] > wave[J["L_Elbow"], 1] + 0.15
        up = _joints(body, "arms_up")
        assert min(up[J["L_Wrist"], 1], up[J["R_Wrist"], 1]) > up[J["Head"], 1]
        squat = _joints(body, "squat")
        assert squat[J["Pelvis"], 1] - squat[J["L_Ankle"], 1] < 0.6 * (
            stand[J["Pelvis"], 1] - stand[J["L_Ankle"], 1]
        )
        walk = _joints(body, WALK_CYCLE[0])  # left heel strike: left foot ahead, right arm ahead
        assert walk[J["L_Ankle"], 2] > walk[J["R_Ankle"], 2] + 0.2
        assert walk[J["R_Wrist"], 2] > walk[J["L_Wrist"], 2]
        crossed = _joints(body, "arms_crossed")
        assert crossed[J["L_Wrist"], 0] < 0.05 and crossed[J["R_Wrist"], 0] > -0.05
        for name in KEY_POSES:
            assert not P.self_collision(_joints(body, name)), name


def test_self_collision_rejects_a_forearm_through_the_trunk(bodies):
    rot = np.concatenate([np.eye(3)[None], P.params_to_rotmats(KEY_POSES["t_pose"])])
    _, joints = bodies[0].forward(rot[None].astype(np.float32))
    joints = joints[0].astype(np.float64)
    assert not P.self_collision(joints)
    crossing = joints.copy()
    crossing[J["L_Wrist"]] = crossing[J["Spine2"]]  # the left forearm ends inside the trunk
    assert P.self_collision(crossing)


def test_sampler_is_deterministic_and_within_limits():
    sampler = P.PoseSampler()
    a = np.stack([sampler.sample(np.random.default_rng([3, i])) for i in range(200)])
    b = np.stack([sampler.sample(np.random.default_rng([3, i])) for i in range(200)])
    np.testing.assert_array_equal(a, b)
    assert np.all(P.within_limits(a))
    # It explores: every joint moves, and most of each range is visited.
    lo, hi = P.LIMITS_DEG
    assert np.all(a.std(axis=0) > 0)
    coverage = np.ptp(a, axis=0) / (hi - lo)
    assert np.median(coverage) > 0.4
