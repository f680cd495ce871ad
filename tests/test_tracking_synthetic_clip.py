"""The embedded person detector keeps the person of a real-size synthetic clip on every frame.

The fault run's case: ``hmrt synth --video --seed 7 --size 1280x720 --fps 15 --frames 240``,
``hmrt demo --gt-boxes off``. Before the detector, the crop left the image at frame 81 (a bbox of
``[-321, 2504, -161, 2664]`` at 23 m) while the confidence stayed 1.0. Needs the bundled DaNet
weights (exported by the demo) and the data engine (hmrt.train) for the clip.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from hmrt.assets import asset_path
from hmrt.cli import main

W, H = 1280, 720


def _clip(tmp_path, frames: int):
    video = tmp_path / "seed7.mp4"
    cmd = [sys.executable, "-m", "hmrt", "synth", "--video", str(video), "--seed", "7",
           "--size", f"{W}x{H}", "--fps", "15", "--frames", str(frames), "--quiet"]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True)
    return video


def _check_track(tmp_path, frames: int, capsys) -> None:
    if not asset_path("weights/danet_edge.pt").is_file():
        pytest.skip("bundled DaNet-edge weights not present")
    video = _clip(tmp_path, frames)
    out = tmp_path / "out"
    code = main(["demo", "--clip", str(video), "--gt-boxes", "off", "--out", str(out),
                 "--backend", "onnxruntime-cpu"])  # fmt: skip
    printed = capsys.readouterr()
    assert code == 0, printed.err
    with np.load(out / "results.npz") as res:
        found, bbox, t = res["person_found"], res["bbox"], res["translation"]
    assert len(found) == frames and found.all(), np.flatnonzero(~found)
    # Every crop lies mostly inside the image and the person at a sane distance.
    x0, y0 = np.maximum(bbox[:, 0], 0), np.maximum(bbox[:, 1], 0)
    x1, y1 = np.minimum(bbox[:, 2], W), np.minimum(bbox[:, 3], H)
    area = (bbox[:, 2] - bbox[:, 0]) * (bbox[:, 3] - bbox[:, 1])
    inside = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None) / area
    assert inside.min() > 0.5
    with np.load(video.with_name("seed7.gt.npz")) as gt:
        gt_root = gt["joints3d"][:frames, 0]  # camera frame, metres
    # The root's depth is right to within half a metre on a typical frame (about 5 m away).
    assert np.median(np.abs(t[:, 2] - gt_root[:, 2])) < 0.5


def test_embedded_detector_keeps_the_person_past_frame_81(tmp_path, capsys):
    _check_track(tmp_path, 90, capsys)


@pytest.mark.slow
def test_embedded_detector_keeps_the_person_on_all_240_frames(tmp_path, capsys):
    _check_track(tmp_path, 240, capsys)
