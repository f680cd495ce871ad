"""``hmrt run`` end to end on real files: outputs, and the reliability cases (one clear line,
exit code 2, no partial output files)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from onnx_fixtures import blob_frame, default_metadata, make_blob_model, write_blob_video

from hmrt.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("run")
    return {
        "model": make_blob_model(d / "blob.onnx"),
        "video": write_blob_video(d / "walk.avi", frames=24, width=320, height=240),
        "dir": d,
    }


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def _assert_clean_failure(code: int, err: str, save: Path, *needles: str) -> None:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("hmrt: error:"), err
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert not save.exists() or list(save.iterdir()) == [], list(save.iterdir())


def test_video_to_annotated_video_npz_and_jsonl(files, tmp_path, capsys):
    save = tmp_path / "out"
    code, out, err = _run(
        ["run", "--model", str(files["model"]), "--source", str(files["video"]),
         "--save", str(save), "--backend", "onnxruntime-cpu", "--threads", "1",
         "--detector", "none"],  # the blob is no person to a real detector
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert "backend: onnxruntime[CPUExecutionProvider]" in out and "FPS" in out
    assert sorted(p.name for p in save.iterdir()) == [
        "annotated.mp4", "results.jsonl", "results.npz"
    ]  # fmt: skip
    with np.load(save / "results.npz") as npz:
        assert npz["joints3d"].shape == (24, 24, 3) and npz["vertices"].shape == (24, 200, 3)
        assert npz["rotmats"].shape == (24, 24, 3, 3) and list(npz["frame"]) == list(range(24))
        # The blob walks right: so do the 2D root and the camera-space root.
        assert npz["joints2d"][-1, 0, 0] > npz["joints2d"][0, 0, 0] + 50
        assert npz["translation"][-1, 0] > npz["translation"][0, 0]
    rows = [json.loads(line) for line in (save / "results.jsonl").read_text().splitlines()]
    assert (
        len(rows) == 24 and rows[0]["roi_source"] == "refine" and rows[5]["roi_source"] == "track"
    )
    cap = cv2.VideoCapture(str(save / "annotated.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 24
    assert (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (
        320,
        240,
    )


def test_image_folder_single_image_and_max_frames(files, tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(5):
        cv2.imwrite(str(folder / f"{i:03d}.png"), blob_frame(320, 240, (100 + 20 * i, 120)))
    (folder / "notes.txt").write_text("ignored: not an image suffix")
    save = tmp_path / "o1"
    code, _, err = _run(["run", "--model", str(files["model"]), "--source", str(folder),
                         "--save", str(save), "--max-frames", "3", "--detector", "none"], capsys)  # fmt: skip
    assert code == 0, err
    with np.load(save / "results.npz") as npz:
        assert len(npz["frame"]) == 3
    save2 = tmp_path / "o2"
    code, _, err = _run(["run", "--model", str(files["model"]), "--source",
                         str(folder / "000.png"), "--save", str(save2), "--smooth", "none", "--detector", "none"], capsys)  # fmt: skip
    assert code == 0, err
    assert len((save2 / "results.jsonl").read_text().splitlines()) == 1
    save3 = tmp_path / "o3"
    code, _, err = _run(["run", "--model", str(files["model"]), "--source", str(folder),
                         "--save", str(save3), "--independent", "--detector", "none"], capsys)  # fmt: skip
    assert code == 0, err
    rows = [json.loads(r) for r in (save3 / "results.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in rows] == list(range(5))
    assert {r["roi_source"] for r in rows} == {"refine"}  # every image searched afresh


def test_missing_source(files, tmp_path, capsys):
    save = tmp_path / "o"
    code, _, err = _run(["run", "--model", str(files["model"]), "--source",
                         str(tmp_path / "nope.mp4"), "--save", str(save)], capsys)  # fmt: skip
    _assert_clean_failure(code, err, save, "nope.mp4", "no such file")


def test_truncated_video(files, tmp_path, capsys):
    data = files["video"].read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    save = tmp_path / "o"
    code, _, err = _run(["run", "--model", str(files["model"]), "--source", str(cut),
                         "--save", str(save)], capsys)  # fmt: skip
    _assert_clean_failure(code, err, save, "cut.avi", "truncated")


def test_non_video_file(files, tmp_path, capsys):
    fake = tmp_path / "fake.mp4"
    fake.write_text("this is not a video")
    save = tmp_path / "o"
    code, _, err = _run(["run", "--model", str(files["model"]), "--source", str(fake),
                         "--save", str(save)], capsys)  # fmt: skip
    _assert_clean_failure(code, err, save, "fake.mp4", "cannot open")


def test_camera_that_does_not_open(files, tmp_path, capsys):
    save = tmp_path / "o"
    code, _, err = _run(["run", "--model", str(files["model"]), "--source", "57",
                         "--save", str(save)], capsys)  # fmt: skip
    _assert_clean_failure(code, err, save, "camera 57")


def test_undecodable_image_in_folder(files, tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    cv2.imwrite(str(folder / "000.png"), blob_frame())
    (folder / "001.png").write_bytes(b"\x89PNG broken")
    save = tmp_path / "o"
    code, _, err = _run(["run", "--model", str(files["model"]), "--source", str(folder),
                         "--save", str(save)], capsys)  # fmt: skip
    _assert_clean_failure(code, err, save, "001.png", "cannot decode")


def test_corrupt_onnx(files, tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(files["model"].read_bytes()[:500])
    save = tmp_path / "o"
    code, _, err = _run(["run", "--model", str(bad), "--source", str(files["video"]),
                         "--save", str(save)], capsys)  # fmt: skip
    _assert_clean_failure(code, err, save, "bad.onnx", "hmrt export")


def test_engine_for_another_tensorrt(files, tmp_path, capsys):
    if not _has_trt():
        pytest.skip("no TensorRT module: the engine cannot even be considered")
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")
    sidecar = {
        "tensorrt_version": "8.6.1", "gpu_name": "Jetson Orin", "compute_capability": "8.7",
        "precision": "fp16", "onnx_path": "m.onnx", "metadata": default_metadata(),
        "build_command": "python export/build_engine.py --onnx m.onnx --out m.engine --fp16",
    }  # fmt: skip
    (tmp_path / "m.engine.json").write_text(json.dumps(sidecar))
    save = tmp_path / "o"
    code, _, err = _run(["run", "--model", str(engine), "--source", str(files["video"]),
                         "--save", str(save)], capsys)  # fmt: skip
    _assert_clean_failure(code, err, save, "8.6.1", "build_engine.py --onnx m.onnx")


def _has_trt() -> bool:
    import importlib.util

    return any(importlib.util.find_spec(m) for m in ("tensorrt", "tensorrt_lean"))


def test_show_without_display_is_a_clear_error(files, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    save = tmp_path / "o"
    code, _, err = _run(["run", "--model", str(files["model"]), "--source", str(files["video"]),
                         "--save", str(save), "--show"], capsys)  # fmt: skip
    _assert_clean_failure(code, err, save, "--show")


def test_bad_intrinsics_argument(files, tmp_path, capsys):
    save = tmp_path / "o"
    code, _, err = _run(["run", "--model", str(files["model"]), "--source", str(files["video"]),
                         "--save", str(save), "--intrinsics", "500,500"], capsys)  # fmt: skip
    _assert_clean_failure(code, err, save, "intrinsics")


def test_process_exit_code_and_no_traceback(files, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "hmrt", "run", "--model", str(files["model"]),
         "--source", str(tmp_path / "missing.avi")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
