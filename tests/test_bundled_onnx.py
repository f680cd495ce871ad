"""The packaged ONNX export of the bundled weights is current: it records the committed ``.pt``'s
sha256, has the outputs a fresh export would have, and matches the torch model on real crops.

When one of these fails, the ``.pt`` (or the ONNX contract) changed without a re-export; the
fix is ``python tools/export_bundled_onnx.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from hmrt.assets import asset_path

WEIGHTS = asset_path("weights/danet_edge.pt")
ONNX = asset_path("weights/danet_edge.onnx")
FIX = "stale export: re-run `python tools/export_bundled_onnx.py`"
pytestmark = pytest.mark.skipif(
    not (WEIGHTS.is_file() and ONNX.is_file()), reason="bundled weights or ONNX not present"
)


@pytest.fixture(scope="module")
def onnx_model():
    import onnx

    return onnx.load(str(ONNX))


@pytest.fixture(scope="module")
def torch_model():
    from hmrt.export.model_source import load_model

    return load_model("danet", "edge").model


def _meta(model) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def test_records_the_committed_weights_hash_and_the_demo_export_options(onnx_model):
    from hmrt.commands.demo import DEMO_OPSET, DEMO_ROI_POOL, WEIGHTS_SHA_KEY
    from hmrt.runtime.cache import file_sha256

    meta = _meta(onnx_model)
    assert meta.get(WEIGHTS_SHA_KEY) == file_sha256(WEIGHTS), FIX
    assert meta["hmrt.model"] == "danet" and meta["hmrt.variant"] == "edge"
    assert meta["hmrt.roi_pool"] == DEMO_ROI_POOL and meta["hmrt.precision"] == "fp32"
    assert meta["hmrt.opset"] == str(DEMO_OPSET)
    assert {o.version for o in onnx_model.opset_import if o.domain in ("", "ai.onnx")} == {
        DEMO_OPSET
    }
    # Package data: large but bounded (fp32 weights plus the body model's blend shapes).
    assert ONNX.stat().st_size <= 20 * 2**20


def test_has_the_outputs_of_a_fresh_export(onnx_model, torch_model):
    """A contract output added later (e.g. a person score) must reach the packaged file."""
    from hmrt.export.onnx_export import output_names

    size = tuple(int(v) for v in _meta(onnx_model)["hmrt.input_size"].split(","))
    assert [o.name for o in onnx_model.graph.output] == output_names(torch_model, size), FIX


def _clip_crops(count: int, res: int, mean, std) -> np.ndarray:
    """``count`` normalised crops of the packaged demo clip around its ground-truth boxes."""
    import cv2

    from hmrt.runtime import camera
    from hmrt.runtime.preprocess import Preprocessor

    with np.load(asset_path("demo/demo_clip.gt.npz")) as gt:
        boxes = gt["bbox"]
    pre = Preprocessor(res, mean, std)
    cap = cv2.VideoCapture(str(asset_path("demo/demo_clip.mp4")))
    frames, wanted = [], set(np.linspace(0, len(boxes) - 1, count).astype(int))
    try:
        for i in range(len(boxes)):
            ok, frame = cap.read()
            assert ok, f"cannot read frame {i} of the demo clip"
            if i in wanted:
                frames.append((frame, camera.box_from_bbox(boxes[i])))
            if len(frames) == count:
                break
    finally:
        cap.release()
    return pre.batch([f for f, _ in frames], np.stack([b for _, b in frames]))


def test_matches_the_torch_model_on_demo_clip_crops(onnx_model, torch_model):
    import onnxruntime as ort
    import torch

    from hmrt.runtime.model_info import parse_metadata

    info = parse_metadata(str(ONNX), _meta(onnx_model))
    crops = _clip_crops(3, info.res, info.mean, info.std)
    session = ort.InferenceSession(str(ONNX), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    got = dict(zip(names, session.run(names, {"image": crops})))
    with torch.no_grad():
        want = torch_model(torch.from_numpy(crops))
    for name in names:
        ref = want[name].numpy()
        assert got[name].shape == ref.shape, name
        # Metres for vertices/joints3d, crop pixels (0..224) for joints2d: 1e-4 either way.
        np.testing.assert_allclose(got[name], ref, rtol=0, atol=1e-4, err_msg=f"{name}; {FIX}")
