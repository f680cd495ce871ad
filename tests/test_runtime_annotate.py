"""Drawing a Result: the mesh overlay covers the person's pixels, skeleton and text are drawn."""

from __future__ import annotations

import numpy as np
from onnx_fixtures import blob_frame, make_blob_model

from hmrt.runtime import Reconstructor
from hmrt.runtime.annotate import Annotator, default_faces


def test_overlay_mesh_joints_and_text(tmp_path):
    rec = Reconstructor(
        make_blob_model(tmp_path / "b.onnx", num_vertices=4), "onnxruntime-cpu", detector="none"
    )
    frame = np.full((240, 320, 3), 30, np.uint8)
    res = rec(blob_frame(320, 240, (160, 120), (40, 120)), bbox=(120, 50, 200, 190))
    # A big quad in front of the camera, centred on the person's root.
    t = res.translation
    res.vertices = (np.array([[-0.3, -0.6, 0], [0.3, -0.6, 0], [0.3, 0.6, 0], [-0.3, 0.6, 0]])
                    + t).astype(np.float32)  # fmt: skip
    faces = np.array([[0, 1, 2], [0, 2, 3]], np.int32)
    plain = Annotator(None)(frame, res, "")
    meshed = Annotator(faces)(frame, res, "")
    root = np.round(res.joints2d[0]).astype(int)
    assert (meshed[root[1] - 3, root[0] + 8] != plain[root[1] - 3, root[0] + 8]).any()
    assert (plain != frame).any()  # skeleton and crop box
    texted = Annotator(None)(frame, None, "12.0 FPS")
    assert (texted[:20, :80] != frame[:20, :80]).any() and (texted[100:] == frame[100:]).all()


def test_default_faces_only_for_the_bundled_vertex_count():
    assert default_faces(None) is None
    assert default_faces(7) is None
