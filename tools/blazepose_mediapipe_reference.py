"""MediaPipe's own pose detector on the test frames: the reference numbers of the detector tests.

``tests/test_detection_blazepose.py`` pins hmrt's BlazePose pipeline (letterbox, anchors,
decoding, weighted NMS, letterbox removal) to what MediaPipe 0.10.21 itself returns: its
registered ``PoseDetectionCpu`` graph (``mediapipe/modules/pose_detection/pose_detection_cpu.pbtxt``,
which keeps detections scoring >= 0.5 in this build) run on the same frames. This script
prints those numbers; it needs the mediapipe wheel, so it runs in its own venv (mediapipe
0.10.21 wants numpy < 2)::

    python3 -m venv /work/scratch/mpenv
    /work/scratch/mpenv/bin/pip install --no-deps mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl
    /work/scratch/mpenv/bin/pip install "numpy<2" "protobuf>=4.25.3,<5" absl-py attrs \
        flatbuffers matplotlib opencv-python-headless scikit-image
    /work/scratch/mpenv/bin/python tools/blazepose_mediapipe_reference.py

The frames are the scikit-image photos and the astronaut pasted into black 640x480, 1280x720
and 480x640 canvases (:func:`test_frames`, shared with the tests).
"""

from __future__ import annotations

import json

import cv2
import numpy as np


def test_frames() -> dict[str, np.ndarray]:
    """BGR frames by name: bundled scikit-image photos and deterministic non-square canvases."""
    from skimage import data as skd

    frames = {
        "astronaut": cv2.cvtColor(skd.astronaut(), cv2.COLOR_RGB2BGR),
        "camera": cv2.cvtColor(skd.camera(), cv2.COLOR_GRAY2BGR),
        # No person, yet MediaPipe claims one (score 0.51 on the optic disc): pinned as is.
        "retina": cv2.cvtColor(skd.retina(), cv2.COLOR_RGB2BGR),
    }
    for (w, h), (side, x0, y0) in {
        (640, 480): (400, 200, 60),
        (1280, 720): (600, 100, 100),
        (480, 640): (400, 40, 200),
    }.items():
        canvas = np.zeros((h, w, 3), np.uint8)
        person = cv2.resize(frames["astronaut"], (side, side), interpolation=cv2.INTER_AREA)
        canvas[y0 : y0 + side, x0 : x0 + side] = person
        frames[f"astronaut_{w}x{h}"] = canvas
    return frames


def main() -> None:
    from mediapipe.python.solution_base import SolutionBase

    graph = SolutionBase(
        graph_config=(
            'input_stream: "image" output_stream: "detections" '
            'node { calculator: "PoseDetectionCpu" input_stream: "IMAGE:image" '
            'output_stream: "DETECTIONS:detections" }'
        ),
        outputs=["detections"],
    )
    out = {}
    for name, bgr in test_frames().items():
        h, w = bgr.shape[:2]
        res = graph.process({"image": cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)})
        dets = []
        for d in res.detections or []:
            bb = d.location_data.relative_bounding_box
            face = [bb.xmin * w, bb.ymin * h, (bb.xmin + bb.width) * w, (bb.ymin + bb.height) * h]
            kps = [[k.x * w, k.y * h] for k in d.location_data.relative_keypoints]
            dets.append(
                {
                    "score": round(d.score[0], 4),
                    "face": [round(v, 1) for v in face],
                    "keypoints": [[round(v, 1) for v in k] for k in kps],
                }
            )
        out[name] = dets
    for name, dets in out.items():
        print(f'"{name}": {json.dumps(dets)},')


if __name__ == "__main__":
    main()
