"""``hmrt run`` arguments and inputs that used to give unclear errors (fault run): each one is
now one line naming the file or option and the fix, exit code 2, on real files and a real ONNX
model in ONNX Runtime."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from onnx_fixtures import blob_frame, make_blob_model

from hmrt.cli import main
from hmrt.runtime.errors import InputError
from hmrt.runtime.intrinsics import parse_intrinsics


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("runargs")
    image = d / "person.png"
    cv2.imwrite(str(image), blob_frame(320, 240))
    return {"model": make_blob_model(d / "blob.onnx"), "image": image, "dir": d}


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_line_error(code: int, err: str, *needles: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("hmrt: error:"), err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _run_args(files, *extra: str) -> list[str]:
    return ["run", "--model", str(files["model"]), "--source", str(files["image"]),
            "--backend", "onnxruntime-cpu", "--threads", "1", *extra]  # fmt: skip


# -- defect 2: --intrinsics -------------------------------------------------------------
@pytest.mark.parametrize(
    "text, needles",
    [
        ("500,0,160,120", ("fy=0", "positive")),
        ("500,-500,160,120", ("fy=-500", "positive")),
        ("0,500,160,120", ("fx=0", "positive")),
        ("abc", ("'abc'",)),
        ("500,500,nan,120", ("non-finite",)),
    ],
)
def test_bad_intrinsics_are_refused_and_echoed(files, capsys, text, needles):
    code, out, err = _run(_run_args(files, "--intrinsics", text), capsys)
    line = _one_line_error(code, err, "--intrinsics", *needles)
    assert "None" not in line and "backend:" not in out  # refused before the model loads


def test_parse_intrinsics_accepts_good_values_and_refuses_zero_focals():
    k = parse_intrinsics("500,400,160,120")
    np.testing.assert_allclose(k, [[500, 0, 160], [0, 400, 120], [0, 0, 1]])
    np.testing.assert_allclose(parse_intrinsics(k), k)
    assert parse_intrinsics(None) is None
    for bad in ((500, 0, 1, 1), np.diag([500.0, 0.0, 1.0]), np.diag([500.0, 500.0, 2.0])):
        with pytest.raises(InputError, match="intrinsics"):
            parse_intrinsics(bad)


def test_good_intrinsics_still_run(files, capsys):
    code, _, err = _run(_run_args(files, "--intrinsics", "400,400,160,120"), capsys)
    assert code == 0, err


# -- defect 7: sources and model files that are not plain files -------------------------
def test_one_pixel_image_names_the_file(files, tmp_path, capsys):
    tiny = tmp_path / "tiny.png"
    cv2.imwrite(str(tiny), np.zeros((1, 1, 3), np.uint8))
    code, _, err = _run(["run", "--model", str(files["model"]), "--source", str(tiny)], capsys)
    _one_line_error(code, err, "tiny.png", "1x1 pixels")


def test_symlink_loop_as_source_and_model(files, tmp_path, capsys):
    a, b = tmp_path / "loop_a.mp4", tmp_path / "loop_b.onnx"
    a.symlink_to(b)
    b.symlink_to(a)
    code, _, err = _run(["run", "--model", str(files["model"]), "--source", str(a)], capsys)
    _one_line_error(code, err, "loop_a.mp4", "symbolic link loop", "--source")
    code, _, err = _run(["run", "--model", str(b), "--source", str(files["image"])], capsys)
    _one_line_error(code, err, "loop_b.onnx", "symbolic link loop")
    dangling = tmp_path / "gone.onnx"
    dangling.symlink_to(tmp_path / "never_there.onnx")
    code, _, err = _run(["run", "--model", str(dangling), "--source", str(files["image"])], capsys)
    _one_line_error(code, err, "gone.onnx", "broken symbolic link", "never_there.onnx")


def test_folder_as_model(files, tmp_path, capsys):
    folder = tmp_path / "models.onnx"
    folder.mkdir()
    (folder / "inner.onnx").write_bytes(files["model"].read_bytes())
    code, _, err = _run(["run", "--model", str(folder), "--source", str(files["image"])], capsys)
    _one_line_error(code, err, "models.onnx", "is a folder", "inner.onnx")


@pytest.mark.parametrize("role", ["--source", "--model"])
def test_dev_stdin_pipe_is_not_a_file(files, role):
    argv = {"--source": str(files["image"]), "--model": str(files["model"])}
    argv[role] = "/dev/stdin"
    proc = subprocess.run(
        [sys.executable, "-m", "hmrt", "run", "--model", argv["--model"], "--source",
         argv["--source"]],
        input=b"", capture_output=True,
    )  # fmt: skip
    err = proc.stderr.decode()
    assert proc.returncode == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "/dev/stdin" in err and "not a regular file" in err and "empty" not in err


def test_missing_model_is_reported_before_a_bad_camera(capsys, tmp_path):
    missing = tmp_path / "missing.onnx"
    code, _, err = _run(["run", "--model", str(missing), "--source", "57"], capsys)
    line = _one_line_error(code, err, "missing.onnx", "not found")
    assert "camera" not in line


# -- defect 12: --verbose notes and help texts -------------------------------------------
def test_backend_notes_only_with_verbose(files, capsys):
    import onnxruntime as ort

    code, out, err = _run(["run", "--model", str(files["model"]), "--source",
                           str(files["image"]), "--threads", "1"], capsys)  # fmt: skip
    assert code == 0, err
    assert "not available" not in out
    code, out, err = _run(["run", "--model", str(files["model"]), "--source",
                           str(files["image"]), "--threads", "1", "--verbose"], capsys)  # fmt: skip
    assert code == 0, err
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert "note: CUDAExecutionProvider not available" in out


@pytest.mark.parametrize("command", ["run", "demo"])
def test_every_option_has_help(command):
    from hmrt.cli import _build_parser

    parser, _ = _build_parser([command])
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    flags = {opt for a in sub._actions for opt in a.option_strings}
    assert {"--max-frames", "--smooth", "--verbose"} <= flags
    if command == "run":
        assert {"--bbox", "--detector", "--detect-every"} <= flags
    missing = [a.option_strings[0] for a in sub._actions if a.option_strings and not a.help]
    assert missing == []


# -- --bbox, --detector, --detect-every validation ----------------------------------------
@pytest.mark.parametrize(
    "extra, needles",
    [
        (("--bbox", "10,20,5,40"), ("--bbox", "'10,20,5,40'", "X1 > X0")),
        (("--bbox", "1,2,3"), ("--bbox", "'1,2,3'")),
        (("--bbox", "a,b,c,d"), ("--bbox", "'a,b,c,d'")),
        (("--detector", "yolo.pt"), ("--detector", "yolo.pt", "default, none")),
        (("--detector", "nosuch.onnx"), ("nosuch.onnx", "detector file not found")),
        (("--detect-every", "0"), ("--detect-every", ">= 1")),
        (("--detector", "none", "--detect-every", "3"), ("--detect-every", "needs a detector")),
    ],
)
def test_bbox_and_detector_arguments_are_validated(files, capsys, extra, needles):
    code, out, err = _run(_run_args(files, *extra), capsys)
    _one_line_error(code, err, *needles)
    assert "backend:" not in out


def test_pinned_bbox_runs(files, tmp_path, capsys):
    import json

    save = tmp_path / "o"
    code, _, err = _run(_run_args(files, "--bbox", "130,60,190,180", "--save", str(save),
                                  "--detector", "none"), capsys)  # fmt: skip
    assert code == 0, err
    row = json.loads((save / "results.jsonl").read_text().splitlines()[0])
    assert row["roi_source"] == "bbox"


def test_paths_in_messages_are_the_ones_given(files, tmp_path, capsys, monkeypatch):
    """A relative path is echoed as typed (the user's own spelling names the file)."""
    monkeypatch.chdir(tmp_path)
    Path("here.onnx").mkdir()
    code, _, err = _run(["run", "--model", "here.onnx", "--source", str(files["image"])], capsys)
    _one_line_error(code, err, "here.onnx is a folder")
