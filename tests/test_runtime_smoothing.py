"""Temporal smoothing: less jitter (frame-to-frame acceleration) with bounded lag, on noisy
synthetic trajectories; rotations stay rotations and survive quaternion sign flips."""

from __future__ import annotations

import numpy as np
import pytest

from hmrt.runtime.errors import InputError
from hmrt.runtime.rotations import (
    axis_angle_to_matrix,
    geodesic_distance,
    matrix_to_quaternion,
)
from hmrt.runtime.smoothing import PRESETS, OneEuro, RotationOneEuro, Smoother, preset_params

FPS = 30.0
T = 300


def _accel(x: np.ndarray) -> float:
    """Mean norm of the second difference: jitter (plus the true acceleration)."""
    return float(np.linalg.norm(x[2:] - 2 * x[1:-1] + x[:-2], axis=-1).mean())


def _lag(smoothed: np.ndarray, truth: np.ndarray, dist=None) -> int:
    """Delay in frames that best aligns ``smoothed`` with ``truth``."""
    dist = dist or (lambda a, b: np.linalg.norm(a - b, axis=-1).mean())
    errors = [dist(smoothed[15 + k :], truth[15 : T - k]) for k in range(10)]
    return int(np.argmin(errors))


def _trajectory(amplitude: float, hz: float, noise: float, dims: int, seed: int):
    t = np.arange(T) / FPS
    rng = np.random.default_rng(seed)
    truth = np.zeros((T, 24, dims))
    truth[:, :, 0] = amplitude * np.sin(2 * np.pi * hz * t[:, None] + np.arange(24) * 0.2)
    truth[:, :, -1] += amplitude * 0.3 * np.cos(2 * np.pi * hz * 0.7 * t[:, None])
    return truth, truth + rng.normal(0.0, noise, truth.shape)


@pytest.mark.parametrize(
    "channel, amplitude, noise, dims",
    [("pose3d", 0.15, 0.01, 3), ("joints2d", 60.0, 2.0, 2), ("translation", 0.3, 0.03, 1)],
)
def test_one_euro_reduces_jitter_with_bounded_lag(channel, amplitude, noise, dims):
    params = preset_params("default")[channel]
    truth, noisy = _trajectory(amplitude, 0.5, noise, dims, seed=1)
    f = OneEuro(params)
    smooth = np.stack([f(x, 1 / FPS) for x in noisy])
    assert _accel(smooth) < 0.6 * _accel(noisy)
    assert _lag(smooth, truth) <= 2
    # At rest the filter is at its strongest.
    still = truth[:1] + np.random.default_rng(2).normal(0, noise, truth.shape)
    f.reset()
    smooth_still = np.stack([f(x, 1 / FPS) for x in still])
    assert _accel(smooth_still) < 0.4 * _accel(still)


def test_presets_order_jitter_and_lag():
    truth, noisy = _trajectory(0.15, 0.5, 0.01, 3, seed=3)
    jitter, lag = {}, {}
    for name in ("light", "default", "heavy"):
        f = OneEuro(preset_params(name)["pose3d"])
        smooth = np.stack([f(x, 1 / FPS) for x in noisy])
        jitter[name], lag[name] = _accel(smooth), _lag(smooth, truth)
    assert jitter["heavy"] < jitter["default"] < jitter["light"] < _accel(noisy)
    assert lag["light"] <= lag["default"] <= lag["heavy"] <= 4
    assert preset_params("none") is None
    assert set(PRESETS) == {"none", "light", "default", "heavy"}
    with pytest.raises(InputError):
        preset_params("max")


def _rotation_trajectory(seed: int):
    t = np.arange(T) / FPS
    rng = np.random.default_rng(seed)
    axes = rng.normal(size=(24, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angle = 0.8 * np.sin(2 * np.pi * 0.5 * t)[:, None, None] + 1.0
    truth = axis_angle_to_matrix(angle * axes[None])
    noise = axis_angle_to_matrix(rng.normal(0, np.deg2rad(2.0), (T, 24, 3)))
    return truth, noise @ truth


def _rot_jitter(R: np.ndarray) -> float:
    step1 = np.einsum("tpij,tpkj->tpik", R[2:], R[1:-1])
    step0 = np.einsum("tpij,tpkj->tpik", R[1:-1], R[:-2])
    return float(geodesic_distance(step1, step0).mean())


def test_rotation_filter_on_quaternions():
    truth, noisy = _rotation_trajectory(4)
    f = RotationOneEuro(preset_params("default")["rotations"])
    smooth = np.stack([f(R, 1 / FPS) for R in noisy])
    # Still rotations: orthonormal with determinant +1 (matrix-entry filtering is not).
    eye = np.einsum("tpij,tpkj->tpik", smooth, smooth)
    np.testing.assert_allclose(eye, np.broadcast_to(np.eye(3), eye.shape), atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(smooth), 1.0, atol=1e-9)
    assert _rot_jitter(smooth) < 0.5 * _rot_jitter(noisy)
    lag = _lag(smooth, truth, lambda a, b: geodesic_distance(a, b).mean())
    assert lag <= 2


def test_rotation_filter_ignores_quaternion_sign_and_crosses_180_degrees():
    """Rotations near 180 degrees flip quaternion sign between frames; no jump may result."""
    t = np.arange(60) / FPS
    angle = np.pi - 0.2 + 0.4 * t  # passes through 180 degrees about z
    R = axis_angle_to_matrix(angle[:, None] * np.array([0.0, 0.0, 1.0]))[:, None]
    q = matrix_to_quaternion(R)
    assert np.any(q[1:, 0, 0] * q[:-1, 0, 0] < 0) or np.any(np.diff(np.sign(q[:, 0, 3])))
    f = RotationOneEuro(preset_params("light")["rotations"])
    out = np.stack([f(r, 1 / FPS) for r in R])
    step = geodesic_distance(out[1:], out[:-1])
    assert step.max() < 0.05  # the true step is 0.4 / 30 = 0.013 rad


def test_smoother_filters_all_channels_and_can_be_off():
    rng = np.random.default_rng(5)
    j3, v = rng.normal(size=(24, 3)), rng.normal(size=(50, 3))
    tr, j2 = np.array([0.1, 0.2, 3.0]), rng.normal(size=(24, 2)) * 100
    rot = axis_angle_to_matrix(rng.normal(size=(24, 3)) * 0.3)
    betas = rng.normal(size=10)
    off = Smoother("none")
    assert off(j3, v, tr, j2, rot, betas)["joints3d"] is j3
    sm = Smoother("default", fps=30)
    first = sm(j3, v, tr, j2, rot, betas)
    np.testing.assert_allclose(first["vertices"], v)  # the first sample passes through
    second = sm(j3 + 0.05, v + 0.05, tr + 0.05, j2 + 5, rot, betas + 1, timestamp=None)
    for key in ("joints3d", "vertices", "translation", "betas"):
        moved = second[key] - first[key]
        assert np.all(moved > 0) and np.all(moved < (1 if key == "betas" else 0.05))
    sm.reset()
    np.testing.assert_allclose(sm(j3 + 1, v, tr, j2, None, None)["joints3d"], j3 + 1)
    # Repeated timestamps do not divide by zero.
    out = sm(j3, v, tr, j2, rot, betas, timestamp=5.0)
    out = sm(j3, v, tr, j2, rot, betas, timestamp=5.0)
    assert np.all(np.isfinite(out["joints3d"]))
