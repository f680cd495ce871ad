"""Crop + augmentation targets: fixed shapes, runtime-identical crops, exact flips and rotations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from data_helpers import real_body_path, write_parts_body

from hmrt.runtime import camera
from hmrt.runtime.preprocess import Preprocessor
from hmrt.train.data.augment import (
    DP_PART_FLIP,
    IMAGENET_MEAN,
    IMAGENET_STD,
    AugmentConfig,
    AugParams,
    sample_augmentation,
)
from hmrt.train.data.dataset import SyntheticDataset, synthetic_targets
from hmrt.train.data.poses import JOINT_NAMES
from hmrt.train.data.synth import SynthConfig, SyntheticGenerator

J = {n: i for i, n in enumerate(JOINT_NAMES)}
EVAL = AugmentConfig(train=False)


@pytest.fixture(scope="module")
def gen(tmp_path_factory):
    path = write_parts_body(tmp_path_factory.mktemp("body") / "tiny.npz")
    # No occluders or truncation: the flip/rotation checks compare whole bodies.
    return SyntheticGenerator(
        SynthConfig(body_path=str(path), occluder_prob=0.0, truncation_prob=0.0), seed=1
    )


@pytest.fixture(scope="module")
def real_gen():
    if real_body_path() is None:
        pytest.skip("bundled body model not built yet")
    return SyntheticGenerator(SynthConfig(occluder_prob=0.0, truncation_prob=0.0), seed=1)


def _targets(gen, index, aug, cfg=EVAL):
    s = gen.sample(index)
    return s, synthetic_targets(s, gen.body, cfg, np.random.default_rng(0), index, aug=aug)


def test_item_shapes_and_collate(gen):
    ds = SyntheticDataset(gen.config, seed=1, length=4, body=gen.body)
    item = ds[0]
    shapes = {
        "image": (3, 224, 224), "joints2d": (24, 2), "joints2d_vis": (24,), "joints3d": (24, 3),
        "joints3d_vis": (24,), "rotmats": (24, 3, 3), "betas": (10,), "cam": (3,),
        "iuv_index": (56, 56), "iuv_u": (56, 56), "iuv_v": (56, 56), "cont_uv": (2, 56, 56),
        "has_smpl": (), "has_3d": (), "has_iuv": (), "box": (3,),
    }  # fmt: skip
    for key, shape in shapes.items():
        assert item[key].shape == shape, key
    assert item["iuv_index"].dtype == np.int64 and item["image"].dtype == np.float32
    assert item["has_smpl"] == item["has_3d"] == item["has_iuv"] == 1.0
    np.testing.assert_allclose(item["joints3d"][0], 0.0, atol=1e-6)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert batch["image"].shape == (2, 3, 224, 224) and batch["iuv_index"].dtype == torch.int64
    # Deterministic per index, augmentation included.
    np.testing.assert_array_equal(ds[1]["image"], ds[1]["image"])


def test_unaugmented_crop_equals_runtime_preprocessing(gen):
    s, t = _targets(gen, 2, AugParams())
    box = camera.box_from_bbox(s["bbox"], 1.2)
    np.testing.assert_allclose(t["box"], box, rtol=1e-6)
    runtime = Preprocessor(224, IMAGENET_MEAN, IMAGENET_STD)(s["image"][..., ::-1].copy(), box)
    # Identical up to one grey level where the float32 box rounds differently (a few pixels).
    diff = np.abs(t["image"] - runtime) * np.asarray(IMAGENET_STD)[:, None, None] * 255
    assert diff.max() <= 1.01 and (diff > 1e-3).mean() < 1e-3


def _weak_residual(joints3d: np.ndarray, t: dict) -> float:
    """Largest 2D error (normalised units) of the best weak-perspective fit of joints3d."""
    xy = (t["joints2d"] + 1) * 112
    cam = camera.fit_weak_perspective(joints3d, xy, 224)
    proj = camera.project_weak(joints3d, cam, 224) * (2 / 224) - 1
    return float(np.abs(proj - t["joints2d"]).max())


def test_targets_follow_the_image_under_rotation_and_scale(gen):
    for index in range(4):
        _, t0 = _targets(gen, index, AugParams())
        _, t = _targets(gen, index, AugParams(rot=35.0, scale=0.8))
        # 2D: rotated by 35 degrees counter-clockwise on screen and zoomed by 1 / 0.8.
        th = np.deg2rad(35.0)
        rot = np.array([[np.cos(th), np.sin(th)], [-np.sin(th), np.cos(th)]])
        np.testing.assert_allclose(t["joints2d"], t0["joints2d"] @ rot.T / 0.8, atol=1e-4)
        # 3D rotates with the image: the fitted weak-perspective camera explains the 2D joints
        # as well as without rotation (perspective leaves a residual either way), and rotating
        # the 3D joints the other way would not.
        rot3 = np.eye(3)
        rot3[:2, :2] = rot
        np.testing.assert_allclose(t["joints3d"], t0["joints3d"] @ rot3.T, atol=1e-5)
        err0, err = _weak_residual(t0["joints3d"], t0), _weak_residual(t["joints3d"], t)
        wrong = _weak_residual(t0["joints3d"] @ rot3, t)
        assert err < 1.5 * err0 + 0.02, (err, err0)
        assert wrong > 2 * err, (wrong, err)
        # The re-rendered dense targets rotate with the image, too.
        d = 56
        ys, xs = np.nonzero(t0["iuv_index"])
        ys2, xs2 = np.nonzero(t["iuv_index"])
        c0 = np.array([xs.mean(), ys.mean()]) + 0.5
        c1 = np.array([xs2.mean(), ys2.mean()]) + 0.5
        expect = (c0 * (2 / d) - 1) @ rot.T / 0.8
        np.testing.assert_allclose(c1 * (2 / d) - 1, expect, atol=0.06)


def test_flip_swaps_left_and_right_exactly(gen):
    for index in range(4):
        _, t0 = _targets(gen, index, AugParams())
        _, t1 = _targets(gen, index, AugParams(flip=True))
        # The left wrist becomes the right wrist, at the mirrored position.
        for a, b in (("L_Wrist", "R_Wrist"), ("L_Ankle", "R_Ankle"), ("Pelvis", "Pelvis")):
            np.testing.assert_allclose(
                t1["joints2d"][J[b]], t0["joints2d"][J[a]] * [-1, 1], atol=1e-4
            )
            np.testing.assert_allclose(
                t1["joints3d"][J[b]], t0["joints3d"][J[a]] * [-1, 1, 1], atol=1e-5
            )
        # Mirrored rotations pose the (symmetric) body into the mirrored joints.
        _, j = gen.body.forward(t1["rotmats"][None], t1["betas"][None])
        np.testing.assert_allclose(j[0] - j[0, 0], t1["joints3d"], atol=1e-4)
        # Rendered parts: the flipped map is the mirrored map with left/right parts swapped.
        # (Silhouettes differ only by edge pixels: the test body is a few pixels wide at 56x56
        # and its mirrored triangles are split along other diagonals.)
        mirrored = DP_PART_FLIP[t0["iuv_index"][:, ::-1]]
        flipped = t1["iuv_index"]
        both, either = (mirrored > 0) & (flipped > 0), (mirrored > 0) | (flipped > 0)
        assert both.sum() / either.sum() > 0.9
        assert (mirrored == flipped)[both].mean() > 0.97
        left_hand = (t0["iuv_index"] == 4).sum()
        assert (t1["iuv_index"] == 3).sum() == pytest.approx(left_hand, rel=0.25, abs=3)
        np.testing.assert_allclose(t1["cam"][[0, 2]], t0["cam"][[0, 2]], rtol=1e-3, atol=1e-4)
        assert t1["cam"][1] == pytest.approx(-t0["cam"][1], abs=1e-4)


def test_pixel_gain_and_training_draws():
    cfg = AugmentConfig()
    draws = [sample_augmentation(np.random.default_rng(i), cfg) for i in range(400)]
    flips = np.mean([d.flip for d in draws])
    zero_rot = np.mean([d.rot == 0 for d in draws])
    assert 0.4 < flips < 0.6 and 0.5 < zero_rot < 0.7
    assert all(0.6 <= g <= 1.4 for d in draws for g in d.gain)
    assert all(0.75 <= d.scale <= 1.25 and abs(d.rot) <= 60 for d in draws)
    assert sample_augmentation(np.random.default_rng(0), EVAL) == AugParams()


def test_flip_on_the_real_body(real_gen):
    """With the bundled (symmetric) body the flipped dense targets mirror almost exactly."""
    for index in range(3):
        _, t0 = _targets(real_gen, index, AugParams())
        _, t1 = _targets(real_gen, index, AugParams(flip=True))
        mirrored = DP_PART_FLIP[t0["iuv_index"][:, ::-1]]
        flipped = t1["iuv_index"]
        both, either = (mirrored > 0) & (flipped > 0), (mirrored > 0) | (flipped > 0)
        assert both.sum() / either.sum() > 0.97
        assert (mirrored == flipped)[both].mean() > 0.97
        _, j = real_gen.body.forward(t1["rotmats"][None], t1["betas"][None])
        np.testing.assert_allclose(j[0] - j[0, 0], t1["joints3d"], atol=2e-3)
