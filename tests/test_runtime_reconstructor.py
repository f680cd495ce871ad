"""Reconstructor on real ONNX files in ONNX Runtime: outputs, cameras, batches, typed errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from onnx_fixtures import blob_frame, make_blob_model

from hmrt.runtime import Reconstructor, Result, camera
from hmrt.runtime.errors import (
    BackendUnavailableError,
    FrameError,
    HmrtError,
    InputError,
    ModelLoadError,
)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_blob_model(tmp_path_factory.mktemp("m") / "blob.onnx")


@pytest.fixture(scope="module")
def rec(model):
    return Reconstructor(model, backend="onnxruntime-cpu", threads=1, detector="none")


def test_import_is_light_and_lazy():
    code = (
        "import sys, hmrt.runtime\n"
        "heavy = [m for m in ('cv2', 'onnxruntime', 'torch') if m in sys.modules]\n"
        "from hmrt.runtime import Reconstructor, Result\n"
        "print(heavy, Reconstructor.__name__, Result.__name__)\n"
        "sys.exit(1 if heavy else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_result_fields_and_backend(rec, model):
    frame = blob_frame(640, 480, (300, 240), (60, 180))
    res = rec(frame, bbox=(200, 120, 400, 360))
    assert isinstance(res, Result)
    assert res.backend == "onnxruntime[CPUExecutionProvider]" == rec.backend
    assert res.vertices.shape == (200, 3) and res.joints3d.shape == (24, 3)
    assert res.joints2d.shape == (24, 2) and res.rotmats.shape == (24, 3, 3)
    assert res.betas.shape == (10,) and res.translation.shape == (3,)
    assert res.intrinsics.shape == (3, 3) and res.bbox.shape == (4,)
    assert res.roi_source == "bbox" and res.confidence == 1.0
    assert set(res.timings) == {
        "detection",
        "preprocess",
        "inference",
        "postprocess",
        "smoothing",
        "total",
    }
    assert rec.info.model == "blob" and rec.info.res == 224
    # The crop is the SPIN-style square around the bbox (1.2 x the longer side).
    np.testing.assert_allclose(res.box, [300, 240, 1.2 * 240], atol=1e-4)
    # Joints3d are the root-relative joints plus the translation: joint 0 sits at it.
    np.testing.assert_allclose(res.joints3d[0], res.translation, atol=1e-6)
    json_row = res.to_json()
    assert "vertices" not in json_row and len(json_row["joints2d"]) == 24


def test_full_image_camera_projects_root_onto_its_pixel(rec):
    """CLIFF translation + default intrinsics: the root projects where the 2D root is."""
    frame = blob_frame(640, 480, (180, 300), (50, 150))
    res = rec(frame, bbox=(130, 200, 230, 400))
    K = camera.default_intrinsics(640, 480)
    np.testing.assert_allclose(res.intrinsics, K)
    root_px = camera.project(res.translation[None], K)[0]
    np.testing.assert_allclose(root_px, res.joints2d[0], atol=0.05)
    # The blob follower's 2D root is the bright centroid (+ the skeleton's pelvis offset).
    assert abs(res.joints2d[0, 0] - 180) < 2


def test_given_intrinsics_change_depth_not_pixels(model):
    frame = blob_frame(640, 480, (320, 240), (60, 180))
    a = Reconstructor(model, backend="onnxruntime-cpu", intrinsics=(500, 500, 320, 240))
    b = Reconstructor(model, backend="onnxruntime-cpu", intrinsics="1000,1000,320,240")
    ra, rb = a(frame, bbox=(260, 130, 380, 350)), b(frame, bbox=(260, 130, 380, 350))
    np.testing.assert_allclose(rb.translation[2], 2 * ra.translation[2], rtol=1e-5)
    np.testing.assert_allclose(ra.joints2d, rb.joints2d, atol=1e-4)


@pytest.mark.parametrize("bad", ["1,2,3", (0, 0, 0, 0), np.eye(4), "a,b,c,d"])
def test_bad_intrinsics_raise_input_error(model, bad):
    with pytest.raises(InputError, match="intrinsics"):
        Reconstructor(model, backend="onnxruntime-cpu", intrinsics=bad)


def test_batch_matches_single_calls(rec):
    frame = blob_frame(640, 480, (320, 240), (60, 180))
    boxes = [(260, 130, 380, 350), (100, 50, 500, 450), (0, 0, 640, 480)]
    batch = rec.reconstruct_batch(frame, boxes)
    for box, res in zip(boxes, batch):
        single = rec(frame, bbox=box)
        np.testing.assert_allclose(res.joints2d, single.joints2d, atol=1e-3)
        np.testing.assert_allclose(res.translation, single.translation, rtol=1e-5)
    frames = [frame, blob_frame(320, 240, (100, 120))]
    assert [r.joints2d.shape for r in rec.reconstruct_batch(frames)] == [(24, 2)] * 2


@pytest.mark.parametrize(
    "frame, match",
    [
        (np.zeros((240, 320), np.uint8), r"\(H, W, 3\)"),
        (np.zeros((240, 320, 4), np.uint8), "BGRA2BGR"),
        (np.zeros((240, 320, 3), np.float32), "uint8"),
        ([[0, 0, 0]], "numpy array"),
        (np.zeros((1, 1, 3), np.uint8), "at least"),
    ],
)
def test_wrong_frames_raise_frame_error(rec, frame, match):
    with pytest.raises(FrameError, match=match):
        rec(frame)
    assert issubclass(FrameError, HmrtError)


@pytest.mark.parametrize("bbox", [(10, 10, 5, 50), (0, 0, 1), (0, 0, np.nan, 4)])
def test_bad_bbox_raises(rec, bbox):
    with pytest.raises(InputError, match="bbox"):
        rec(blob_frame(), bbox=bbox)


def test_corrupt_and_foreign_onnx_raise_model_load_error(tmp_path, model):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(model.read_bytes()[: model.stat().st_size // 3])
    with pytest.raises(ModelLoadError, match=r"corrupt\.onnx"):
        Reconstructor(corrupt, backend="onnxruntime-cpu")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_text("not a model")
    with pytest.raises(ModelLoadError, match=r"garbage\.onnx"):
        Reconstructor(garbage)
    bare = make_blob_model(tmp_path / "bare.onnx", metadata={})
    with pytest.raises(ModelLoadError, match="not an hmrt model"):
        Reconstructor(bare)
    partial = make_blob_model(tmp_path / "partial.onnx", outputs=("vertices", "joints3d"))
    with pytest.raises(ModelLoadError, match="joints2d, cam"):
        Reconstructor(partial)
    with pytest.raises(ModelLoadError, match="not found"):
        Reconstructor(tmp_path / "missing.onnx")
    other = tmp_path / "model.pt"
    other.write_bytes(b"x")
    with pytest.raises(ModelLoadError, match=r"\.onnx or \.engine"):
        Reconstructor(other)


def test_explicit_backends_never_fall_back(model, tmp_path):
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(BackendUnavailableError, match="CUDAExecutionProvider"):
            Reconstructor(model, backend="onnxruntime-cuda")
    with pytest.raises(BackendUnavailableError, match="build_engine"):
        Reconstructor(model, backend="tensorrt")
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")
    with pytest.raises(BackendUnavailableError, match="only the tensorrt backend"):
        Reconstructor(engine, backend="onnxruntime")
    with pytest.raises(BackendUnavailableError, match="unknown backend"):
        Reconstructor(model, backend="openvino")


def test_auto_says_which_backend_runs(model):
    rec = Reconstructor(model)  # auto
    assert rec.backend.startswith("onnxruntime[")
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert rec.backend == "onnxruntime[CPUExecutionProvider]"
        assert any("CUDAExecutionProvider" in n for n in rec.backend_notes)


def test_unknown_smoothing_preset_fails_before_loading(model):
    with pytest.raises(InputError, match="preset"):
        Reconstructor(model, smoothing="ultra")
