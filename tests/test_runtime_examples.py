"""The embedding examples run: the minimal loop and the ROS 2 example's non-ROS path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx_fixtures import blob_frame, make_blob_model, write_blob_video

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("ex")
    return make_blob_model(d / "blob.onnx"), write_blob_video(d / "v.avi", frames=6)


def test_embed_minimal(files):
    model, video = files
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "embed_minimal.py"), str(model), str(video),
         "--max-frames", "4", "--detector", "none"],  # a blob is no person to a detector
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("running on onnxruntime[") and len(lines) == 5


def test_ros2_example_without_ros(files):
    model, video = files
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "ros2_node.py"), "--model", str(model),
         "--video", str(video), "--max-frames", "5", "--detector", "none"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    msgs = [json.loads(line) for line in proc.stdout.strip().splitlines()]
    assert len(msgs) == 5
    assert np.array(msgs[0]["joints"]).shape == (24, 3) and msgs[0]["root"][2] > 0
    assert msgs[-1]["stamp"] > msgs[0]["stamp"]


def test_ros2_callback_api_in_process(files):
    sys.path.insert(0, str(EXAMPLES))
    try:
        import ros2_node
    finally:
        sys.path.remove(str(EXAMPLES))
    assert "rclpy" not in sys.modules  # imported only when the ROS node runs
    core = ros2_node.MeshRecovery(str(files[0]), backend="onnxruntime-cpu", detector="none")
    got = []
    core.subscribe(got.append)
    msg = core.on_image(blob_frame(320, 240, (160, 120)), 0.0)
    assert msg is got[0] and msg.joints.shape == (24, 3)
    assert core.on_image(np.full((240, 320, 3), 20, np.uint8), 0.033) is None  # lost: silent
    assert len(got) == 1

    class FakeImage:  # the fields of sensor_msgs/Image that the converter reads
        encoding, height, width = "rgb8", 2, 3
        step = 10  # row padding beyond width * 3
        data = bytes(range(20))

    frame = ros2_node.image_msg_to_bgr(FakeImage())
    assert frame.shape == (2, 3, 3) and frame[0, 0].tolist() == [2, 1, 0]
