"""SpinNpzDataset on a tiny SPIN-format npz with images written by the test."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from hmrt.runtime.errors import InputError
from hmrt.train.data.augment import AugmentConfig
from hmrt.train.data.poses import JOINT_NAMES
from hmrt.train.data.spin import SPIN_TO_SMPL, SpinNpzDataset

J = {n: i for i, n in enumerate(JOINT_NAMES)}
SPIN_L_WRIST, SPIN_R_ANKLE, SPIN_PELVIS = 11, 0, 14


def _write(tmp_path, with_smpl: bool = True):
    """Three 160x120 images with a white dot at the left wrist; their SPIN npz."""
    n = 3
    part = np.zeros((n, 24, 3))
    S = np.zeros((n, 24, 4))
    names = []
    for i in range(n):
        img = np.full((120, 160, 3), 40 + 30 * i, np.uint8)
        wrist = (100.5 + 5 * i, 50.5)  # a pixel centre, in continuous pixel coordinates
        cv2.circle(img, (round(wrist[0] - 0.5), round(wrist[1] - 0.5)), 3, (255, 255, 255), -1)
        name = f"img_{i}.jpg"
        cv2.imwrite(str(tmp_path / name), img)
        names.append(name)
        part[i, SPIN_L_WRIST] = [*wrist, 1.0]
        part[i, SPIN_R_ANKLE] = [70.0, 100.0, 1.0]
        part[i, 13] = [80.0, 10.0, 1.0]  # head top: not an SMPL joint, dropped
        S[i, SPIN_PELVIS] = [0.1, 0.2, 3.0, 1.0]
        S[i, SPIN_L_WRIST] = [0.4, 0.0, 3.0, 1.0]
    arrays = {
        "imgname": np.array(names),
        "center": np.tile([80.0, 60.0], (n, 1)),
        "scale": np.full(n, 0.6),  # crop side 120 px
        "part": part,
        "S": S,
    }
    if with_smpl:
        arrays |= {"pose": np.zeros((n, 72)), "shape": np.zeros((n, 10)), "has_smpl": np.ones(n)}
    path = tmp_path / "spin.npz"
    np.savez(path, **arrays)
    return path


def _dot(item: dict) -> np.ndarray:
    """Centre (continuous crop pixels) of the white dot in a normalised crop."""
    img = item["image"].mean(axis=0)
    ys, xs = np.nonzero(img > img.max() - 0.5)
    return np.array([xs.mean(), ys.mean()]) + 0.5


def test_spin_items_keypoints_and_image(tmp_path):
    path = _write(tmp_path)
    with pytest.warns(UserWarning, match="import-smpl"):
        ds = SpinNpzDataset(path, tmp_path, augment=AugmentConfig(train=False))
    assert len(ds) == 3
    item = ds[1]
    # Left wrist at (105.5, 50.5): crop centre (80, 60), side 120 -> (25.5/60, -9.5/60).
    np.testing.assert_allclose(item["joints2d"][J["L_Wrist"]], [25.5 / 60, -9.5 / 60], atol=1e-6)
    assert item["joints2d_vis"][J["L_Wrist"]] == 1
    assert item["joints2d_vis"].sum() == 2  # wrist + ankle; head top is not an SMPL joint
    # The dot is in the crop where the keypoint says.
    np.testing.assert_allclose(_dot(item), (item["joints2d"][J["L_Wrist"]] + 1) * 112, atol=0.5)
    # 3D from S, root-relative to the pelvis; SMPL parameters are not used with the open model.
    np.testing.assert_allclose(item["joints3d"][J["L_Wrist"]], [0.3, -0.2, 0.0], atol=1e-6)
    assert item["has_3d"] == 1 and item["has_smpl"] == 0 and item["has_iuv"] == 0
    assert item["joints3d_vis"][J["L_Wrist"]] == 1 and item["joints3d_vis"][J["Neck"]] == 0
    assert set(SPIN_TO_SMPL.values()) <= set(range(24))
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3)))
    assert batch["image"].shape == (3, 3, 224, 224) and batch["iuv_index"].shape == (3, 56, 56)


def test_spin_flip_moves_left_wrist_to_right(tmp_path):
    path = _write(tmp_path, with_smpl=False)
    flip = AugmentConfig(flip_prob=1.0, noise_factor=0.0, rot_zero_prob=1.0, scale_factor=0.0)
    ds = SpinNpzDataset(path, tmp_path, augment=flip, aug_seed=0)
    item = ds[1]
    np.testing.assert_allclose(item["joints2d"][J["R_Wrist"]], [-25.5 / 60, -9.5 / 60], atol=1e-6)
    assert item["joints2d_vis"][J["L_Wrist"]] == 0 and item["joints2d_vis"][J["R_Wrist"]] == 1
    np.testing.assert_allclose(item["joints3d"][J["R_Wrist"]], [-0.3, -0.2, 0.0], atol=1e-6)
    np.testing.assert_allclose(_dot(item), (item["joints2d"][J["R_Wrist"]] + 1) * 112, atol=0.5)


def test_spin_errors_name_the_file(tmp_path):
    path = _write(tmp_path, with_smpl=False)
    ds = SpinNpzDataset(path, tmp_path / "nowhere")
    with pytest.raises(InputError, match=r"img_0\.jpg"):
        ds[0]
    bad = tmp_path / "bad.npz"
    np.savez(bad, imgname=np.array(["a.jpg"]))
    with pytest.raises(InputError, match="center"):
        SpinNpzDataset(bad, tmp_path)
    with pytest.raises(InputError, match="not found"):
        SpinNpzDataset(tmp_path / "missing.npz", tmp_path)


def test_spin_root_falls_back_to_the_hips(tmp_path):
    path = _write(tmp_path, with_smpl=False)
    arrays = dict(np.load(path))
    arrays["S"][:, SPIN_PELVIS] = 0.0
    arrays["S"][:, 2] = [0.0, 0.4, 3.0, 1.0]  # right hip
    arrays["S"][:, 3] = [0.2, 0.4, 3.0, 1.0]  # left hip
    np.savez(path, **arrays)
    item = SpinNpzDataset(path, tmp_path, augment=AugmentConfig(train=False))[0]
    np.testing.assert_allclose(item["joints3d"][J["L_Wrist"]], [0.3, -0.4, 0.0], atol=1e-6)
    np.testing.assert_allclose(item["joints3d"][J["L_Hip"]], [0.1, 0.0, 0.0], atol=1e-6)
