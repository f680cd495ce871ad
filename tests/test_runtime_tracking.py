"""Person ROI without a detector: acquire on the whole frame, follow the joints, re-acquire
when confidence drops; and the detector interface. Runs the blob-follower ONNX model."""

from __future__ import annotations

import numpy as np
import pytest
from onnx_fixtures import blob_frame, make_blob_model

from hmrt.runtime import Reconstructor
from hmrt.runtime.errors import InputError
from hmrt.runtime.roi_tracker import RoiDecision, RoiTracker, parse_detections

W, H = 640, 480


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_blob_model(tmp_path_factory.mktemp("m") / "blob.onnx")


def test_acquire_then_follow_a_moving_person(model):
    rec = Reconstructor(model, backend="onnxruntime-cpu", detector="none")
    sources, errors = [], []
    for i in range(20):
        cx = 150 + 15 * i
        res = rec(blob_frame(W, H, (cx, 250), (50, 150)))
        sources.append(res.roi_source)
        errors.append(abs(res.joints2d[0, 0] - cx))
        if i > 0:
            # The crop follows the person and stays about 1.5x their joints' extent.
            assert abs(res.box[0] - (cx - 15)) < 5
            assert 0.9 * 150 < res.box[2] < 2.5 * 150
    # Frame 0: whole frame, then a second pass around what it found.
    assert sources[0] == "refine" and set(sources[1:]) == {"track"}
    assert max(errors) < 3.0


def test_reacquire_when_the_person_disappears_and_reappears(model):
    rec = Reconstructor(model, backend="onnxruntime-cpu", detector="none")
    for i in range(3):
        assert rec(blob_frame(W, H, (200 + 5 * i, 240), (50, 150))).confidence > 0.9
    empty = np.full((H, W, 3), 20, np.uint8)
    lost = rec(empty)
    assert lost.roi_source == "track" and lost.confidence < 0.5
    # Next frames: tracking was dropped, the whole frame is searched again.
    still_empty = rec(empty)
    assert still_empty.roi_source == "full" and still_empty.confidence < 0.5
    again = rec(blob_frame(W, H, (500, 200), (50, 150)))
    assert again.roi_source == "refine" and again.confidence > 0.9
    follow = rec(blob_frame(W, H, (505, 200), (50, 150)))
    assert follow.roi_source == "track" and follow.confidence > 0.9
    assert abs(follow.joints2d[0, 0] - 505) < 3


def _line(half: float) -> np.ndarray:
    """24 joints on a vertical line of length ``2 * half`` centred at the origin."""
    return np.stack([np.zeros(24), np.linspace(-half, half, 24)], axis=1)


def test_large_jump_lowers_confidence():
    tracker = RoiTracker()
    skeleton = _line(80) + np.array([300, 240])
    box = np.array([300, 240, 240.0])
    assert tracker.update(skeleton, RoiDecision(box, "full"), (H, W)) > 0.9
    # The same skeleton 2 extents away from where it was: not a plausible motion.
    jumped = skeleton + np.array([330, 0])
    conf = tracker.update(jumped, RoiDecision(np.array([630, 240, 240.0]), "track"), (H, W))
    assert conf < 0.5 and not tracker.tracking


def test_implausible_scale_and_joints_outside_the_crop():
    tracker = RoiTracker()
    box = RoiDecision(np.array([300, 240, 200.0]), "track")
    tiny = _line(5) + np.array([300, 240])
    assert tracker.update(tiny, box, (H, W)) < 0.5
    tracker.reset()
    outside = _line(60) + np.array([600, 240])
    assert tracker.update(outside, box, (H, W)) < 0.5
    assert tracker.update(np.full((24, 2), np.nan), box, (H, W)) == 0.0


def test_detector_interface(model):
    calls = []

    def detector(frame):
        calls.append(frame.shape)
        # Two people: a low score far left, a high score at the blob.
        return np.array([[10, 10, 60, 160, 0.3], [270, 170, 330, 330, 0.9]])

    rec = Reconstructor(model, backend="onnxruntime-cpu", detector=detector, detect_every=5)
    frame = blob_frame(W, H, (300, 250), (50, 150))
    first = rec(frame)
    assert first.roi_source == "detector" and len(calls) == 1
    np.testing.assert_allclose(first.box, [300, 250, 1.2 * 160])
    sources = [rec(frame).roi_source for _ in range(6)]
    assert sources == ["track"] * 4 + ["detector", "track"] and len(calls) == 2  # frames 0, 5
    every = Reconstructor(model, backend="onnxruntime-cpu", detector=detector, detect_every=1)
    assert {every(frame).roi_source for _ in range(3)} == {"detector"}


def test_parse_detections_formats():
    boxes, scores = parse_detections((np.array([[0, 0, 10, 20]]), np.array([0.7])))
    assert boxes.shape == (1, 4) and scores[0] == 0.7
    boxes, scores = parse_detections([])
    assert boxes.shape == (0, 4)
    boxes, scores = parse_detections(np.array([[0, 0, 10, 20], [5, 5, 1, 1]]))
    assert len(boxes) == 1 and scores[0] == 1.0  # the degenerate box is dropped
    with pytest.raises(InputError, match="detector"):
        parse_detections(np.zeros((2, 3)))


def test_without_refinement_the_first_frame_is_the_whole_frame(model):
    rec = Reconstructor(model, backend="onnxruntime-cpu", refine_acquisition=False, detector="none")
    first = rec(blob_frame(W, H, (200, 240), (50, 150)))
    assert first.roi_source == "full"
    np.testing.assert_allclose(first.box, [W / 2, H / 2, W])
    assert rec(blob_frame(W, H, (205, 240), (50, 150))).roi_source == "track"
