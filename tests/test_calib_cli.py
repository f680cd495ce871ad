"""``hmrt calibrate``: one-line errors with exit code 2 and no partial output; a real run."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import onnx
from calib_helpers import danet_edge_fp32


def _calibrate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hmrt", "calibrate", *args], capture_output=True, text=True
    )


def _assert_one_line_error(proc, *fragments):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hmrt: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for f in fragments:
        assert f in lines[0]


def test_missing_onnx_and_bad_data_fail_cleanly(tmp_path):
    out = tmp_path / "m.int8.onnx"
    proc = _calibrate("--onnx", str(tmp_path / "nope.onnx"), "--data", "synth", "--out", str(out))
    _assert_one_line_error(proc, "ONNX file not found", "nope.onnx", "hmrt export")
    proc = _calibrate("--onnx", str(danet_edge_fp32()), "--data", str(tmp_path / "no_dir"),
                      "--out", str(out))  # fmt: skip
    _assert_one_line_error(proc, "no_dir", "no such folder or video", "'synth'")
    proc = _calibrate("--onnx", str(danet_edge_fp32()), "--data", "synth", "--out",
                      str(danet_edge_fp32()))  # fmt: skip
    _assert_one_line_error(proc, "would overwrite the FP32 input")
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a temp file


def test_calibrate_a_folder_of_images(tmp_path, capsys):
    from hmrt.cli import main

    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        cv2.imwrite(str(folder / f"{i}.jpg"), rng.integers(0, 256, (120, 160, 3), np.uint8))
    out, cpu = tmp_path / "m.int8.onnx", tmp_path / "m.int8.cpu.onnx"
    code = main([
        "calibrate", "--onnx", str(danet_edge_fp32()), "--data", str(folder), "--out", str(out),
        "--calib-n", "4", "--method", "percentile", "--float-groups", "refinement",
        "--cpu-copy", str(cpu), "--no-progress",
    ])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert (
        f"wrote {out}" in printed and "groups refinement" in printed and f"wrote {cpu}" in printed
    )
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["hmrt.int8_method"] == "percentile"
    assert meta["hmrt.int8_calib_n"] == "4" and "4 of 5 images" in meta["hmrt.int8_calib_data"]
    assert meta["hmrt.int8_float_groups"] == "refinement"
    cpu_meta = {p.key: p.value for p in onnx.load(str(cpu)).metadata_props}
    assert cpu_meta["hmrt.int8_format"].endswith("onnxruntime-cpu")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames", cpu.name, out.name]
