"""hmrt.runtime.metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from hmrt.runtime import metrics


def _rot(axis: np.ndarray, angle: float) -> np.ndarray:
    # Rodrigues written out here so this test does not depend on the rotations module.
    k = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx


def test_mpjpe_hand_computed():
    gt = np.zeros((4, 3))
    gt[1:, 0] = [0.1, 0.2, 0.3]
    pred = gt.copy()
    pred[1] += [0.0, 0.03, 0.04]  # 50 mm off
    pred[3] += [0.0, 0.0, 0.01]  # 10 mm off
    assert metrics.mpjpe(pred, gt) == pytest.approx((50 + 10) / 4)
    # A pure translation is removed by the root alignment, but not without it.
    assert metrics.mpjpe(gt + 0.5, gt) == pytest.approx(0.0, abs=1e-9)
    assert metrics.mpjpe(gt + np.array([0.3, 0.4, 0.0]), gt, root=None) == pytest.approx(500.0)
    # Weights select joints.
    assert metrics.mpjpe(pred, gt, weights=[1, 1, 0, 0]) == pytest.approx(25.0)


def test_pa_mpjpe_removes_similarity_transform():
    rng = np.random.default_rng(0)
    gt = rng.normal(size=(5, 24, 3)) * 0.3
    rots = np.stack([_rot(rng.normal(size=3), rng.uniform(0, np.pi)) for _ in range(5)])
    scale = rng.uniform(0.5, 2.0, size=5)
    pred = scale[:, None, None] * np.einsum("nab,njb->nja", rots, gt) + rng.normal(size=(5, 1, 3))
    err = metrics.pa_mpjpe(pred, gt)
    assert err.shape == (5,)
    np.testing.assert_allclose(err, 0.0, atol=1e-6)
    assert metrics.mpjpe(pred, gt).min() > 10.0  # unaligned error is large


def test_pa_mpjpe_does_not_allow_a_reflection():
    # An asymmetric tetrahedron (edge lengths 1, 2, 3 from the origin) has no mirror symmetry,
    # so its mirror image cannot be matched by rotation, scale and translation.
    gt = np.array([[0, 0, 0], [1, 0, 0], [0, 2, 0], [0, 0, 3]], dtype=float)
    mirrored = gt * [1, 1, -1]
    assert metrics.pa_mpjpe(mirrored, gt) > 100.0
    assert metrics.pa_mpjpe(gt * 2.0 + 1.0, gt) == pytest.approx(0.0, abs=1e-9)


def test_procrustes_degenerate_input_is_finite():
    gt = np.random.default_rng(1).normal(size=(24, 3))
    out = metrics.procrustes_align(np.zeros((24, 3)), gt)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, np.broadcast_to(gt.mean(0), gt.shape), atol=1e-12)


def test_pve_with_roots():
    gt = np.random.default_rng(2).normal(size=(2, 10, 3))
    pred = gt + np.array([0.0, 0.006, 0.008])  # 10 mm everywhere
    np.testing.assert_allclose(metrics.pve(pred, gt), [10.0, 10.0])
    roots = np.array([[0.0, 0.006, 0.008], [0.0, 0.006, 0.008]])
    np.testing.assert_allclose(metrics.pve(pred, gt, pred_root=roots), [0.0, 0.0], atol=1e-9)


def test_pck_pixels_and_bbox_relative():
    gt = np.array([[10, 10, 1], [20, 20, 1], [30, 30, 1], [40, 40, 0]], dtype=float)
    pred = gt[:, :2] + np.array([[3, 4], [6, 8], [0, 0], [100, 0]])  # errors 5, 10, 0, (100)
    assert metrics.pck_2d(pred, gt, threshold=5.0) == pytest.approx(2 / 3)
    assert metrics.pck_2d(pred, gt, threshold=10.0) == pytest.approx(1.0)
    # bbox 100 x 50 -> PCK@0.05 threshold is 5 px.
    assert metrics.pck_2d(pred, gt, 0.05, bbox=[0, 0, 100, 50]) == pytest.approx(2 / 3)
    # visibility argument overrides the third column.
    assert metrics.pck_2d(pred, gt, 5.0, visibility=[1, 1, 1, 1]) == pytest.approx(2 / 4)
    assert np.isnan(metrics.pck_2d(pred, gt, 5.0, visibility=[0, 0, 0, 0]))


def test_evaluate_3d_summary():
    rng = np.random.default_rng(3)
    gt_j = rng.normal(size=(3, 24, 3))
    gt_v = rng.normal(size=(3, 50, 3))
    out = metrics.evaluate_3d(gt_j + 1.0, gt_j, gt_v + 1.0, gt_v)
    assert out == pytest.approx({"mpjpe": 0.0, "pa_mpjpe": 0.0, "pve": 0.0}, abs=1e-6)
