"""On real photos that ship with scikit-image, the bundled model with the embedded detector
claims a person in the two portraits and in none of the photos without people (the detector's
one false positive, a retina photo at 0.51, stays under the Reconstructor's 0.6 threshold)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from hmrt.assets import asset_path
from hmrt.runtime import Reconstructor

skdata = pytest.importorskip("skimage.data")
MODEL = asset_path("weights/danet_edge.onnx")
PEOPLE = ("astronaut", "camera")
NO_PEOPLE = ("chelsea", "cat", "coffee", "rocket", "text", "page", "horse", "retina",
             "hubble_deep_field", "immunohistochemistry", "moon", "clock")  # fmt: skip


def _bgr(name: str) -> np.ndarray:
    img = np.asarray(getattr(skdata, name)())
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(np.ascontiguousarray(img[..., :3]), cv2.COLOR_RGB2BGR)


@pytest.fixture(scope="module")
def rec():
    if not MODEL.is_file():
        pytest.skip("bundled ONNX not present")
    with Reconstructor(MODEL, backend="onnxruntime-cpu") as r:
        yield r


@pytest.mark.parametrize("name", PEOPLE)
def test_portraits_have_a_person(rec, name):
    rec.reset()
    res = rec(_bgr(name))
    assert res.person_found and res.roi_source == "detector" and res.person_score > 0.6


@pytest.mark.parametrize("name", NO_PEOPLE)
def test_photos_without_people_claim_none(rec, name):
    rec.reset()
    res = rec(_bgr(name))
    assert not res.person_found, (name, res.person_score, res.roi_source)
