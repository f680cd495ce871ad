"""Camera conventions: hand-computed projections, crop transforms, CLIFF translation, fits."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from hmrt.runtime import camera


def test_project_hand_computed():
    K = camera.intrinsics(100.0, 120.0, 50.0, 40.0)
    uv = camera.project(np.array([[1.0, 2.0, 10.0], [0.0, 0.0, 5.0]]), K)
    np.testing.assert_allclose(uv, [[60.0, 64.0], [50.0, 40.0]])
    # translation is added to every point; leading batch dims broadcast
    uv_t = camera.project(np.zeros((2, 1, 3)), K, translation=np.array([[1, 2, 10], [0, 0, 5.0]]))
    np.testing.assert_allclose(uv_t[:, 0], [[60.0, 64.0], [50.0, 40.0]])


def test_default_and_crop_intrinsics():
    K = camera.default_intrinsics(640, 480)
    np.testing.assert_allclose(K, [[800, 0, 320], [0, 800, 240], [0, 0, 1]])
    np.testing.assert_allclose(
        camera.crop_intrinsics(224), [[5000, 0, 112], [0, 5000, 112], [0, 0, 1]]
    )
    np.testing.assert_allclose(camera.scale_intrinsics(K, 0.25)[:2], K[:2] * 0.25)


def test_scaled_intrinsics_project_to_scaled_pixels():
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(20, 3)) + np.array([0, 0, 6])
    K = camera.intrinsics(300.0, 310.0, 112.0, 110.0)
    np.testing.assert_allclose(
        camera.project(pts, camera.scale_intrinsics(K, 0.25)), 0.25 * camera.project(pts, K)
    )


def test_weak_perspective_matches_crop_perspective_camera():
    res, cam = 224, np.array([0.9, 0.05, -0.2])
    t = camera.weak_to_translation(cam, res)
    np.testing.assert_allclose(t, [0.05, -0.2, 2 * 5000 / (224 * 0.9)])
    np.testing.assert_allclose(camera.translation_to_weak(t, res), cam)
    flat = np.array([[0.0, 0.0, 0.0], [0.3, -0.7, 0.0], [-0.4, 0.8, 0.0]])
    # Points at root depth: weak perspective is exactly the perspective crop camera.
    np.testing.assert_allclose(
        camera.project(flat, camera.crop_intrinsics(res), t), camera.project_weak(flat, cam, res)
    )
    # Hand check: the root lands at the normalised crop point (s tx, s ty).
    np.testing.assert_allclose(
        camera.project_weak(flat[:1], cam, res), [[(0.9 * 0.05 + 1) * 112, (0.9 * -0.2 + 1) * 112]]
    )
    body = flat + np.array([0.0, 0.0, 0.15])  # 15 cm of depth at ~12 m: tiny perspective difference
    diff = camera.project(body, camera.crop_intrinsics(res), t) - camera.project_weak(
        body, cam, res
    )
    assert np.abs(diff).max() < 1.0


def test_box_from_bbox_and_corners():
    box = camera.box_from_bbox(np.array([10.0, 20.0, 50.0, 120.0]), scale=1.2)
    np.testing.assert_allclose(box, [30.0, 70.0, 120.0])
    np.testing.assert_allclose(camera.box_to_xyxy(box), [-30.0, 10.0, 90.0, 130.0])


def test_crop_matrix_hand_computed_and_round_trip():
    box, res = np.array([100.0, 50.0, 200.0]), 100
    pts = np.array([[0.0, -50.0], [200.0, 150.0], [100.0, 50.0]])
    np.testing.assert_allclose(camera.image_to_crop(pts, box, res), [[0, 0], [100, 100], [50, 50]])
    np.testing.assert_allclose(
        camera.crop_to_image(camera.image_to_crop(pts, box, res), box, res), pts
    )
    # rot = 90: a point right of the centre appears above the crop centre (y is down).
    m = camera.crop_matrix(box, res, rot=90.0)
    np.testing.assert_allclose(camera.apply_affine(m, [[150.0, 50.0]]), [[50.0, 25.0]], atol=1e-12)
    back = camera.apply_affine(camera.invert_affine(m), camera.apply_affine(m, pts))
    np.testing.assert_allclose(back, pts, atol=1e-9)


def test_opencv_affine_samples_the_documented_pixel_centres():
    # Image whose value is the continuous x (resp. y) of each pixel centre: a linear ramp,
    # which bilinear warping reproduces exactly away from the borders.
    h, w = 120, 160
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    box, res = np.array([70.3, 61.7, 80.0]), 32
    for rot in (0.0, 30.0):
        m = camera.crop_matrix(box, res, rot=rot)
        warp = [
            cv2.warpAffine(img, camera.opencv_affine(m), (res, res), flags=cv2.INTER_LINEAR)
            for img in (xx, yy)
        ]
        cj, ci = np.meshgrid(np.arange(res) + 0.5, np.arange(res) + 0.5)
        src = camera.apply_affine(camera.invert_affine(m), np.stack([cj.ravel(), ci.ravel()], 1))
        np.testing.assert_allclose(warp[0].ravel(), src[:, 0], atol=2e-3)
        np.testing.assert_allclose(warp[1].ravel(), src[:, 1], atol=2e-3)


def test_crop_to_full_translation_hand_computed():
    K = camera.intrinsics(1000.0, 1000.0, 320.0, 240.0)
    cam = np.array([0.8, 0.1, -0.05])
    # Box centred on the principal point: T = (tx, ty, 2 f / (b s)).
    t = camera.crop_to_full_translation(cam, np.array([320.0, 240.0, 400.0]), K)
    np.testing.assert_allclose(t, [0.1, -0.05, 2 * 1000 / (400 * 0.8)])
    # Box shifted 100 px right: Tx grows by 2 * 100 / (b s).
    t = camera.crop_to_full_translation(cam, np.array([420.0, 240.0, 400.0]), K)
    np.testing.assert_allclose(t, [0.1 + 200 / 320, -0.05, 6.25])


def test_crop_projection_mapped_back_equals_full_image_projection():
    rng = np.random.default_rng(1)
    res = 224
    K = camera.intrinsics(900.0, 880.0, 330.0, 235.0)
    boxes = np.stack(
        [rng.uniform(100, 500, 8), rng.uniform(100, 400, 8), rng.uniform(150, 400, 8)], 1
    )
    cams = np.stack([rng.uniform(0.6, 1.2, 8), rng.normal(0, 0.1, 8), rng.normal(0, 0.1, 8)], 1)
    flat = np.concatenate([rng.normal(0, 0.4, (8, 30, 2)), np.zeros((8, 30, 1))], axis=-1)
    T = camera.crop_to_full_translation(cams, boxes, K)
    full = camera.project(flat, K, T)
    via_crop = camera.crop_to_image(camera.project_weak(flat, cams, res), boxes, res)
    # fx != fy: the depth uses sqrt(fx fy), so x and y scales are off by sqrt(fx/fy) ~ 1 %.
    K_sq = camera.intrinsics(890.0, 890.0, 330.0, 235.0)
    T_sq = camera.crop_to_full_translation(cams, boxes, K_sq)
    np.testing.assert_allclose(camera.project(flat, K_sq, T_sq), via_crop, atol=1e-9)
    np.testing.assert_allclose(full, via_crop, rtol=0.02, atol=3.0)
    np.testing.assert_allclose(camera.full_to_crop_cam(T, boxes, K), cams, atol=1e-12)


def test_fit_weak_perspective_recovers_camera():
    rng = np.random.default_rng(2)
    pts = rng.normal(0, 0.4, (3, 24, 3))
    cams = np.array([[0.9, 0.1, -0.2], [1.1, -0.05, 0.3], [0.7, 0.0, 0.0]])
    kp = camera.project_weak(pts, cams, 224)
    np.testing.assert_allclose(camera.fit_weak_perspective(pts, kp, 224), cams, atol=1e-10)
    # zero weight removes a corrupted point
    bad = kp.copy()
    bad[:, 5] += 40.0
    w = np.ones((3, 24))
    w[:, 5] = 0.0
    np.testing.assert_allclose(camera.fit_weak_perspective(pts, bad, 224, w), cams, atol=1e-10)
    assert not np.allclose(camera.fit_weak_perspective(pts, bad, 224), cams, atol=1e-3)


def test_fit_weak_perspective_degenerate_gives_zero_scale():
    out = camera.fit_weak_perspective(np.zeros((5, 3)), np.full((5, 2), 100.0), 224)
    assert out[0] == 0.0 and np.all(np.isfinite(out))


def test_fit_translation_recovers_translation():
    rng = np.random.default_rng(3)
    pts = rng.normal(0, 0.3, (2, 24, 3))
    T = np.array([[0.2, -0.1, 8.0], [-0.5, 0.3, 4.0]])
    K = camera.intrinsics(1000.0, 1010.0, 320.0, 240.0)
    uv = camera.project(pts, K, T)
    np.testing.assert_allclose(camera.fit_translation(pts, uv, K), T, rtol=1e-9)


@pytest.mark.parametrize("res", [56, 224])
def test_weak_round_trip_batched(res):
    cam = np.array([[0.5, 0.2, 0.1], [1.5, -0.3, 0.0]])
    back = camera.translation_to_weak(camera.weak_to_translation(cam, res, 3000.0), res, 3000.0)
    np.testing.assert_allclose(back, cam)
