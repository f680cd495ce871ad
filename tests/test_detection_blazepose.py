"""The embedded BlazePose person detector: asset, decoding, real photos, frame mapping.

Reference numbers marked "MediaPipe" come from MediaPipe 0.10.21's own ``PoseDetectionCpu``
graph on the same frames (``tools/blazepose_mediapipe_reference.py``); hmrt's ONNX pipeline
must reproduce them. Photos are the ones bundled with scikit-image (nothing is downloaded).
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from hmrt.assets import asset_path
from hmrt.runtime.detection import Detections, PersonDetector, open_detector
from hmrt.runtime.detection.blazepose import (
    ASSET,
    NUM_ANCHORS,
    BlazePoseDetector,
    letterbox_matrix,
    ssd_anchors,
)
from hmrt.runtime.errors import InputError, ModelLoadError

REPO = Path(__file__).resolve().parents[1]

# MediaPipe 0.10.21 PoseDetectionCpu (threshold 0.5): score, face box, 4 keypoints (pixels).
MEDIAPIPE = {
    "astronaut": (0.8071, [159.0, 133.3, 261.3, 235.6], [[158.7, 524.0], [238.7, 28.5], [207.6, 241.7], [263.0, -121.2]]),
    "camera": (0.6136, [130.0, 116.1, 232.3, 218.4], [[54.2, 401.2], [249.2, 64.4], [160.7, 189.9], [310.8, -70.7]]),
    "retina": (0.5106, [136.8, 491.3, 418.7, 773.2], [[198.1, 678.6], [355.6, 592.6], [268.9, 637.2], [386.4, 572.9]]),
    "astronaut_640x480": (0.8505, [298.6, 129.1, 426.7, 257.0], [[332.4, 431.0], [379.3, 118.2], [360.1, 234.2], [397.1, -20.5]]),
    "astronaut_1280x720": (0.9504, [228.4, 163.8, 484.2, 419.6], [[317.3, 579.4], [371.7, 208.2], [350.5, 338.9], [397.6, 21.9]]),
    "astronaut_480x640": (0.9142, [146.2, 265.3, 274.2, 393.3], [[172.9, 531.1], [219.5, 260.2], [208.5, 364.1], [243.8, 144.5]]),
}  # fmt: skip
# Bundled photos without a person (scikit-image's data folder): none may be claimed.
NO_PERSON = (
    "chelsea.png", "coffee.png", "rocket.jpg", "text.png", "page.png", "horse.png", "ihc.png",
    "hubble_deep_field.jpg", "motorcycle_left.png", "motorcycle_right.png", "brick.png",
    "grass.png", "gravel.png", "coins.png", "moon.png", "cell.png", "color.png", "logo.png",
    "clock_motion.png", "phantom.png", "chessboard_RGB.png",
)  # fmt: skip


@pytest.fixture(scope="module")
def detector() -> BlazePoseDetector:
    det = BlazePoseDetector(backend="onnxruntime-cpu", threads=2)
    yield det
    det.close()


@pytest.fixture(scope="module")
def frames() -> dict[str, np.ndarray]:
    pytest.importorskip("skimage")
    spec = importlib.util.spec_from_file_location(
        "blazepose_mediapipe_reference", REPO / "tools" / "blazepose_mediapipe_reference.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.test_frames()


def _skimage_photo(name: str) -> np.ndarray:
    skimage = pytest.importorskip("skimage")
    path = Path(skimage.__file__).parent / "data" / name
    if not path.is_file():
        pytest.skip(f"{name} is not bundled with this scikit-image")
    frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert frame is not None, path
    return frame


# ---------------------------------------------------------------------------------------------
# Asset and model contract
# ---------------------------------------------------------------------------------------------


def test_asset_is_bundled_small_and_licensed():
    onnx_file = asset_path(ASSET)
    assert onnx_file.is_file()
    assert onnx_file.stat().st_size < 10 * 1024 * 1024
    folder = onnx_file.parent
    licence = (folder / "LICENSE").read_text()
    assert "Apache License" in licence and "Version 2.0" in licence
    assert "MediaPipe" in licence  # the NOTICE-style attribution
    readme = (folder / "README.md").read_text()
    for fact in ("mediapipe-0.10.21", "pose_detection.tflite", "Apache", "sha256"):
        assert fact in readme
    setup = (REPO / "setup.py").read_text()
    assert '"**/*.onnx"' in setup  # packaged as hmrt.assets data


def test_onnx_graph_interface():
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(asset_path(ASSET)))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["license"] == "Apache-2.0" and "mediapipe==0.10.21" in meta["source"]
    assert model.opset_import[0].version == 17
    dims = lambda v: [d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
    assert [(i.name, dims(i)) for i in model.graph.input] == [("image", [1, 3, 224, 224])]
    assert {o.name: dims(o) for o in model.graph.output} == {
        "regressors": [1, NUM_ANCHORS, 12],
        "classificators": [1, NUM_ANCHORS, 1],
    }


def test_ssd_anchors_match_mediapipe_options():
    anchors = ssd_anchors()
    assert anchors.shape == (NUM_ANCHORS, 2) == (2254, 2)  # 28*28*2 + 14*14*2 + 7*7*6
    # Layer 1 (stride 8): two anchors per cell, row-major, centres (i + 0.5) / 28.
    np.testing.assert_allclose(anchors[0], [0.5 / 28, 0.5 / 28], atol=1e-7)
    np.testing.assert_allclose(anchors[1], anchors[0])
    np.testing.assert_allclose(anchors[2], [1.5 / 28, 0.5 / 28], atol=1e-7)
    np.testing.assert_allclose(anchors[2 * 28], [0.5 / 28, 1.5 / 28], atol=1e-7)
    # Layer 2 (stride 16) starts at 1568; the three stride-32 layers share 6 anchors per cell.
    np.testing.assert_allclose(anchors[1568], [0.5 / 14, 0.5 / 14], atol=1e-7)
    np.testing.assert_allclose(anchors[1960:1966], [[0.5 / 7, 0.5 / 7]] * 6, atol=1e-7)
    np.testing.assert_allclose(anchors[-1], [6.5 / 7, 6.5 / 7], atol=1e-7)


def test_open_detector_default_is_blazepose():
    det = open_detector("default", backend="onnxruntime-cpu", threads=1, score_threshold=0.6)
    try:
        assert isinstance(det, BlazePoseDetector) and isinstance(det, PersonDetector)
        assert det.name == "blazepose[onnxruntime[CPUExecutionProvider]]"
        assert det.score_threshold == 0.6
    finally:
        det.close()


def test_bad_arguments_are_input_errors(tmp_path):
    with pytest.raises(InputError):
        BlazePoseDetector(backend="onnxruntime-cpu", score_threshold=1.5)
    with pytest.raises(ModelLoadError, match="missing"):
        BlazePoseDetector(backend="onnxruntime-cpu", path=tmp_path / "nope.onnx")


# ---------------------------------------------------------------------------------------------
# Decoding and frame mapping (exact arithmetic on synthetic raw outputs)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(640, 480), (1280, 720), (480, 640), (224, 224)])
def test_decode_maps_letterbox_to_frame_pixels(detector, size):
    """One anchor fires with a known face box and keypoints: check the pixel mapping."""
    w, h = size
    _, side = letterbox_matrix(w, h)
    a = 1568 + 2 * (5 * 14 + 6)  # stride-16 layer, cell row 5, column 6
    ax, ay = detector.anchors[a]
    reg = np.zeros((NUM_ANCHORS, 12), np.float32)
    logits = np.full(NUM_ANCHORS, -50.0, np.float32)
    logits[a] = 2.0
    # Offsets in 224-pixel units: face centre +10 px right, 20x30 px; hip 40 px below the
    # anchor, scale point 60 px above it (radius 100 px in the input).
    reg[a] = [10, 0, 20, 30, 0, 40, 0, -60, 0, 5, 3, -20]
    det = detector.decode(reg, logits, w, h, side)
    assert len(det) == 1
    assert det.scores[0] == pytest.approx(1 / (1 + math.exp(-2.0)), abs=1e-6)
    to_px = lambda nx, ny: (nx * side + (w - side) / 2, ny * side + (h - side) / 2)  # noqa: E731
    cx, cy = to_px(ax + 10 / 224, ay)
    np.testing.assert_allclose(
        det.meta["face_boxes"][0],
        [cx - 10 / 224 * side, cy - 15 / 224 * side, cx + 10 / 224 * side, cy + 15 / 224 * side],
        atol=1e-3,
    )
    hip = np.array(to_px(ax, ay + 40 / 224))
    np.testing.assert_allclose(det.keypoints[0, 0], hip, atol=1e-3)
    np.testing.assert_allclose(det.keypoints[0, 1], to_px(ax, ay - 60 / 224), atol=1e-3)
    r = 100 / 224 * side
    expect = np.array([hip[0] - r, hip[1] - r, hip[0] + r, hip[1] + r])
    expect[0::2] = np.clip(expect[0::2], 0, w)
    expect[1::2] = np.clip(expect[1::2], 0, h)
    np.testing.assert_allclose(det.boxes[0], expect, atol=1e-3)
    cx_roi, cy_roi, roi_side, rotation = det.meta["rois"][0]
    assert (cx_roi, cy_roi) == pytest.approx(tuple(hip), abs=1e-3)
    assert roi_side == pytest.approx(2 * r * 1.25, rel=1e-5)
    assert rotation == pytest.approx(0.0, abs=1e-6)  # scale point straight above the hip


def test_decode_weighted_nms_merges_neighbours(detector):
    reg = np.zeros((NUM_ANCHORS, 12), np.float32)
    logits = np.full(NUM_ANCHORS, -50.0, np.float32)
    reg[[0, 1], :4] = [[0, 0, 40, 40], [4, 0, 40, 40]]  # the two anchors of cell (0, 0)
    reg[[0, 1], 5] = [20, 20]
    reg[[0, 1], 7] = [-20, -20]
    logits[[0, 1]] = [3.0, 1.0]
    det = detector.decode(reg, logits, 224, 224, 224.0)
    assert len(det) == 1
    assert det.scores[0] == pytest.approx(1 / (1 + math.exp(-3.0)), abs=1e-6)
    s0, s1 = 1 / (1 + math.exp(-3.0)), 1 / (1 + math.exp(-1.0))
    x_centre = 0.5 / 28 * 224 + 4 * s1 / (s0 + s1)
    face = det.meta["face_boxes"][0]
    assert (face[0] + face[2]) / 2 == pytest.approx(x_centre, abs=1e-3)


# ---------------------------------------------------------------------------------------------
# Real photos
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["astronaut", "camera", "astronaut_640x480", "astronaut_1280x720", "astronaut_480x640"]
)
def test_matches_mediapipe_on_people(detector, frames, name):
    """Same person, score and geometry as MediaPipe's own graph, on square and non-square
    frames (letterbox in both directions)."""
    frame = frames[name]
    det = detector(frame)
    assert isinstance(det, Detections) and len(det) == 1
    score, face, kps = MEDIAPIPE[name]
    assert det.scores[0] == pytest.approx(score, abs=0.01)
    np.testing.assert_allclose(det.meta["face_boxes"][0], face, atol=3.0)
    np.testing.assert_allclose(det.keypoints[0], kps, atol=3.0)
    assert det.boxes.dtype == np.float32 and det.keypoints.shape == (1, 4, 2)
    # The person box covers the face and stays inside the frame.
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = det.boxes[0]
    assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
    fx, fy = (face[0] + face[2]) / 2, (face[1] + face[3]) / 2
    assert x0 <= fx <= x1 and y0 <= fy <= y1


def test_portraits_face_inside_box(detector):
    """The person boxes of the two portraits cover the actual faces (hand-checked regions)."""
    faces = {"astronaut.png": (170, 40, 290, 140), "camera.png": (180, 70, 260, 190)}
    for name, (fx0, fy0, fx1, fy1) in faces.items():
        det = detector(_skimage_photo(name))
        assert len(det) == 1, name
        x0, y0, x1, y1 = det.boxes[0]
        assert x0 <= fx0 and y0 <= fy0 and x1 >= fx1 and y1 >= fy1, (name, det.boxes[0])


@pytest.mark.parametrize("name", NO_PERSON)
def test_no_person_on_photos_without_people(detector, name):
    det = detector(_skimage_photo(name))
    assert len(det) == 0, (name, det.scores)


def test_known_false_positive_retina_matches_mediapipe(detector, frames):
    """A retina photo scores 0.51 (the optic disc read as a face): MediaPipe itself claims a
    person there at its default 0.5. Pinned so that a change in behaviour is noticed."""
    det = detector(frames["retina"])
    assert len(det) == 1
    assert det.scores[0] == pytest.approx(MEDIAPIPE["retina"][0], abs=0.01)
    assert (
        len(BlazePoseDetector(backend="onnxruntime-cpu", score_threshold=0.55)(frames["retina"]))
        == 0
    )


@pytest.mark.parametrize("value", [0, 255, 128])
@pytest.mark.parametrize("size", [(640, 480), (1280, 720)])
def test_flat_frames_have_no_person(detector, value, size):
    w, h = size
    det = detector(np.full((h, w, 3), value, np.uint8))
    assert len(det) == 0
    assert det.keypoints.shape == (0, 4, 2) and det.meta["face_boxes"].shape == (0, 4)
