"""Whether a person is there comes from evidence: detector scores, the track's geometry, the crop
lying in the image, a plausible depth and a crop that is not blank. Runs the blob-follower ONNX
model in ONNX Runtime with plain-callable detectors (the embedded detector has its own tests)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx_fixtures import blob_frame, make_blob_model

from hmrt.runtime import Reconstructor
from hmrt.runtime.errors import HmrtError, InputError, ModelLoadError

W, H = 640, 480


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_blob_model(tmp_path_factory.mktemp("m") / "blob.onnx")


class BlobDetector:
    """Finds the white blob by thresholding (a real detector for this toy world)."""

    def __init__(self, score: float = 0.9):
        self.score = score
        self.calls = 0

    def __call__(self, frame):
        self.calls += 1
        ys, xs = np.nonzero(frame[..., 0] > 128)
        if len(xs) < 50:
            return np.zeros((0, 5))
        return np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1, self.score]])


def test_empty_black_and_white_frames_claim_no_person(model):
    det = BlobDetector()
    rec = Reconstructor(model, backend="onnxruntime-cpu", detector=det)
    for value in (0, 255, 20):
        res = rec(np.full((H, W, 3), value, np.uint8))
        assert not res.person_found and res.person_score == 0.0 and res.confidence == 0.0
        # The toy detector calls the white frame one big blob: the blank crop still says no.
        assert res.roi_source == ("detector" if value == 255 else "none")
    found = rec(blob_frame(W, H, (300, 250), (50, 150)))
    assert found.person_found and found.roi_source == "detector"
    assert 0.5 < found.person_score <= 0.9 + 1e-6
    row = found.to_json()
    assert row["person_found"] is True and row["person_score"] == pytest.approx(found.person_score)


def test_a_track_that_goes_blank_is_dropped_and_reacquired(model):
    det = BlobDetector()
    rec = Reconstructor(model, backend="onnxruntime-cpu", detector=det, detect_every=100)
    for i in range(3):
        assert rec(blob_frame(W, H, (300 + 3 * i, 250), (50, 150))).person_found
    assert det.calls == 1  # tracked, not re-detected
    # The picture goes black mid-track: the blank crop is no evidence of a person.
    blank = rec(np.zeros((H, W, 3), np.uint8))
    assert blank.roi_source == "track" and not blank.person_found
    assert not rec.tracker.tracking
    back = rec(blob_frame(W, H, (400, 250), (50, 150)))
    assert back.roi_source == "detector" and back.person_found and det.calls == 2


def test_detect_every_rechecks_the_person(model):
    det = BlobDetector()
    rec = Reconstructor(model, backend="onnxruntime-cpu", detector=det, detect_every=3)
    frame = blob_frame(W, H, (300, 250), (50, 150))
    first = rec(frame)
    assert first.person_found
    rec(frame)
    rec(frame)
    # Frame 3 re-runs the detector; the person left (a textured background remains).
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 100, (H, W, 3), dtype=np.uint8)
    gone = rec(texture)
    assert gone.roi_source == "none" and not gone.person_found and det.calls == 2


def test_weak_detections_are_not_a_person(model):
    rec = Reconstructor(model, backend="onnxruntime-cpu", detector=BlobDetector(score=0.3))
    res = rec(blob_frame(W, H, (300, 250), (50, 150)))
    assert res.roi_source == "detector" and not res.person_found
    assert res.person_score == pytest.approx(0.3, abs=0.05)


def test_a_pinned_box_outside_the_image_or_on_nothing_is_no_person(model):
    rec = Reconstructor(model, backend="onnxruntime-cpu", detector="none")
    frame = blob_frame(W, H, (300, 250), (50, 150))
    assert rec(frame, bbox=(250, 160, 350, 340)).person_found
    outside = rec(frame, bbox=(2000, 2000, 2100, 2200))
    assert not outside.person_found and outside.person_score == 0.0
    blank = rec(np.zeros((H, W, 3), np.uint8), bbox=(250, 160, 350, 340))
    assert not blank.person_found
    many = rec.reconstruct_batch(frame, [(250, 160, 350, 340), (-900, -900, -800, -700)])
    assert [r.person_found for r in many] == [True, False]


def test_the_track_is_dropped_when_its_crop_leaves_the_frame(model):
    rec = Reconstructor(model, backend="onnxruntime-cpu", detector="none")
    results = [rec(blob_frame(W, H, (cx, 250), (50, 150))) for cx in range(300, 700, 25)]
    # The blob leaves on the right: no frame claims a person whose crop is mostly outside.
    for r in results:
        x0, y0, x1, y1 = r.bbox
        inside = max(0, min(x1, W) - max(x0, 0)) * max(0, min(y1, H) - max(y0, 0))
        if r.person_found:
            assert inside / ((x1 - x0) * (y1 - y0)) >= 0.5
    assert not results[-1].person_found


def test_without_a_detector_the_score_is_the_geometry(model):
    rec = Reconstructor(model, backend="onnxruntime-cpu", detector="none")
    res = rec(blob_frame(W, H, (300, 250), (50, 150)))
    assert res.person_found and res.person_score == pytest.approx(res.confidence, abs=1e-6)
    assert rec.detector_name == "none"


def test_api_misuse_raises_hmrt_errors(model):
    with pytest.raises(ModelLoadError, match="model path"):
        Reconstructor(None)
    with pytest.raises(InputError, match="fps"):
        Reconstructor(model, backend="onnxruntime-cpu", detector="none", fps=0)
    with pytest.raises(InputError, match="detect_every"):
        Reconstructor(model, backend="onnxruntime-cpu", detector=BlobDetector(), detect_every=0)
    rec = Reconstructor(model, backend="onnxruntime-cpu", detector="none")
    frame = blob_frame(W, H, (300, 250), (50, 150))
    with pytest.raises(InputError, match="bbox"):
        rec(frame, bbox="1,2,3,4")
    rec.close()
    rec.close()  # twice is fine
    with pytest.raises(HmrtError, match="closed"):
        rec(frame)
    with pytest.raises(HmrtError, match="closed"):
        rec.reconstruct_batch(frame, [(250, 160, 350, 340)])
