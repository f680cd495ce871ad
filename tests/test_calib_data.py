"""Calibration readers: the runtime's own preprocessing, deterministic selection, clear errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from calib_helpers import danet_edge_fp32, parts_body

from hmrt.calib.data import (
    CALIB_SEED,
    ImageFolderSource,
    SynthSource,
    VideoFileSource,
    calibration_images,
    open_calibration_source,
    preprocessor_from_onnx,
)
from hmrt.runtime import camera
from hmrt.runtime.errors import InputError
from hmrt.runtime.model_info import parse_metadata
from hmrt.runtime.preprocess import Preprocessor, full_frame_box


def _runtime_preprocessor() -> Preprocessor:
    """The Preprocessor the runtime builds for this ONNX (from its own metadata parser)."""
    import onnx

    model = onnx.load(str(danet_edge_fp32()), load_external_data=False)
    info = parse_metadata("m.onnx", {p.key: p.value for p in model.metadata_props})
    return Preprocessor(info.res, info.mean, info.std)


def test_synth_crops_are_the_runtime_preprocessing_of_the_generator_scene():
    from hmrt.train.data.synth import SynthConfig, SyntheticGenerator

    pre = preprocessor_from_onnx(danet_edge_fp32())
    crops = calibration_images(SynthSource(3, body=parts_body()), pre, progress=False)
    assert crops.shape == (3, 3, 224, 224) and crops.dtype == np.float32
    # Independent recomputation: generator sample -> BGR frame, SPIN box, runtime Preprocessor.
    gen = SyntheticGenerator(SynthConfig(body_path=str(parts_body())), seed=CALIB_SEED)
    ref = _runtime_preprocessor()
    for i in range(3):
        s = gen.sample(i)
        frame = np.ascontiguousarray(s["image"][..., ::-1])
        box = camera.box_from_bbox(np.asarray(s["bbox"], np.float64), 1.2)
        np.testing.assert_array_equal(crops[i], ref(frame, box))
    again = calibration_images(SynthSource(3, body=parts_body()), pre, progress=False)
    np.testing.assert_array_equal(crops, again)  # deterministic


def test_synth_refuses_the_evaluation_seed():
    from hmrt.train.data.validation import SYNTH_VAL_SEED

    with pytest.raises(InputError, match="synth-val's seed"):
        SynthSource(2, seed=SYNTH_VAL_SEED, body=parts_body())


def _write_images(folder, count):
    folder.mkdir()
    rng = np.random.default_rng(3)
    for i in range(count):
        img = rng.integers(0, 256, (90 + i, 120, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"img_{i:02d}.png"), img)
    (folder / "notes.txt").write_text("not an image")


def test_image_folder_subset_is_seeded_sorted_and_whole_frame(tmp_path):
    _write_images(tmp_path / "imgs", 7)
    a = ImageFolderSource(tmp_path / "imgs", n=4, seed=1)
    b = ImageFolderSource(tmp_path / "imgs", n=4, seed=1)
    assert a.files == b.files and len(a.files) == 4
    assert a.files == sorted(a.files)
    assert all(p.suffix == ".png" for p in a.files)
    assert ImageFolderSource(tmp_path / "imgs", n=10).files == sorted(
        p for p in (tmp_path / "imgs").iterdir() if p.suffix == ".png"
    )
    pre = _runtime_preprocessor()
    crops = calibration_images(a, pre, progress=False)
    first = cv2.imread(str(a.files[0]))
    expected = pre(first, full_frame_box(first.shape[1], first.shape[0]))
    np.testing.assert_array_equal(crops[0], expected)


def _write_video(path, count):
    """A real MJPG video whose frame i is uniformly grey at level 10 * i (decodable back)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(count):
        writer.write(np.full((48, 64, 3), 10 * i, np.uint8))
    writer.release()


def test_video_frames_are_evenly_spaced_and_decoded_in_order(tmp_path):
    path = tmp_path / "clip.avi"
    _write_video(path, 12)
    src = VideoFileSource(path, n=4)
    assert src.indices == [0, 4, 7, 11]
    pre = Preprocessor(32, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    crops = calibration_images(src, pre, progress=False)
    # Centre of each crop is the frame's grey level (x / 255 with mean 0, std 1).
    levels = np.round(crops[:, :, 16, 16].mean(axis=1) * 255 / 10).astype(int)
    assert levels.tolist() == [0, 4, 7, 11]
    assert len(VideoFileSource(path, n=50)) == 12  # never more than the video has


def test_open_source_errors(tmp_path):
    with pytest.raises(InputError, match="no such folder or video"):
        open_calibration_source(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images"):
        open_calibration_source(tmp_path / "empty")
    (tmp_path / "zero.mp4").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        open_calibration_source(tmp_path / "zero.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all" * 10)
    with pytest.raises(InputError, match="cannot open it as a video"):
        open_calibration_source(tmp_path / "junk.mp4")
    with pytest.raises(InputError, match="--calib-n 0"):
        open_calibration_source("synth", n=0)
