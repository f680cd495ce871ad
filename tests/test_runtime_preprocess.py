"""Preprocessing: one warpAffine crop with black padding, RGB order, normalisation from metadata."""

from __future__ import annotations

import numpy as np

from hmrt.runtime import camera
from hmrt.runtime.model_info import parse_metadata
from hmrt.runtime.preprocess import Preprocessor, full_frame_box

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _frame(h=240, w=320):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_crop_at_scale_one_is_a_plain_slice():
    """A box of side == res aligned on pixels copies pixels exactly (centre convention)."""
    frame = _frame()
    pre = Preprocessor(64, MEAN, STD)
    box = np.array([100 + 32, 50 + 32, 64])  # crop covers pixels [100,164) x [50,114)
    crop = pre.crop(frame, box)
    np.testing.assert_array_equal(crop, frame[50:114, 100:164])


def test_crop_pads_outside_the_frame_with_black():
    frame = np.full((100, 200, 3), 255, np.uint8)
    pre = Preprocessor(50, MEAN, STD)
    crop = pre.crop(frame, full_frame_box(200, 100))  # 200x200 square around a 200x100 frame
    assert crop[:10].max() == 0 and crop[-10:].max() == 0  # padding above and below
    assert crop[20:30].min() == 255


def test_normalise_matches_numpy_reference():
    pre = Preprocessor(32, MEAN, STD)
    crop = _frame(32, 32)
    out = pre.normalise(crop)
    rgb = crop[..., ::-1].astype(np.float64) / 255.0
    ref = ((rgb - np.array(MEAN)) / np.array(STD)).transpose(2, 0, 1)
    assert out.dtype == np.float32 and out.shape == (3, 32, 32)
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_batch_writes_each_item():
    pre = Preprocessor(32, MEAN, STD)
    frame = _frame()
    boxes = np.array([[50, 50, 40], [200, 120, 80]])
    batch = pre.batch([frame, frame], boxes)
    for i, box in enumerate(boxes):
        np.testing.assert_allclose(batch[i], pre(frame, box))


def test_crop_and_joint_mapping_are_inverse():
    """A pixel feature found in the crop maps back to its image position."""
    frame = np.zeros((240, 320, 3), np.uint8)
    frame[150, 210] = 255  # pixel centre (210.5, 150.5)
    box = np.array([200.0, 140.0, 90.0])
    res = 90
    crop = Preprocessor(res, MEAN, STD).crop(frame, box)
    iy, ix = np.unravel_index(crop[..., 0].argmax(), crop.shape[:2])
    back = camera.crop_to_image(np.array([[ix + 0.5, iy + 0.5]]), box, res)[0]
    np.testing.assert_allclose(back, [210.5, 150.5], atol=1e-6)


def test_metadata_parsing():
    meta = {
        "hmrt.input_size": "256,256",
        "hmrt.mean": "0.5,0.5,0.5",
        "hmrt.std": "0.25,0.25,0.25",
        "hmrt.crop_focal": "4000",
        "hmrt.model": "danet",
        "hmrt.variant": "edge",
    }
    info = parse_metadata("x.onnx", meta)
    assert info.res == 256 and info.crop_focal == 4000 and info.name == "danet-edge-fp32"
