"""BoBW-edge's FP16 graph in ONNX Runtime: finite everywhere, including where nothing is seen.

The FP16 graph is what ``hmrt export --precision fp16`` writes (``export/fp16_graph.py``: the
model's declared FP32 islands, among them the image -> UV scatter-mean and the masked part
averages, stay float32; everything else is FP16). BoBW divides by texel and part counts in
three places (the scatter-mean, ``J_initial`` and the final part means); each divides by
``clamp(count, 1)``, so an empty texel or a part with no pixel gives 0, never 0/0. Checked on

* 4 synth-val crops and an all-black crop (the seeded random-init model), and
* a model that sees no person: the DMP mask head's bias at -1e4, so the mask is 0 everywhere,
  no pixel is splatted, no texel is occupied and every LSP part is fully occluded;
* (``slow``) a stressed copy whose zero-initialised last layers (dense heads, inpaint net,
  GIK-Net, UVI) get small random weights and whose BatchNorm statistics are measured on the
  crops, so that the mesh depends on the image (at random init it does not).

Every output must be finite, and the FP16 vertices must stay within a loose bound of the FP32
graph's (:data:`MAX_VERTEX_DIFF_M`, measured at random init). At random init the
UVI's last conv and GIK-Net's last layer start at zero, so the mesh barely depends on the image
and this difference says little about accuracy: the PA-MPJPE change needs trained weights
(``python -m hmrt.export.fp16_report --checkpoint runs/.../best.pt``, docs/models/bobw.md).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from bobw_helpers import stressed

from hmrt.train.models import build

MAX_VERTEX_DIFF_M = 1e-3
"""Measured: 2.3e-4 m on both graphs (seed 0, ONNX Runtime 1.32 CPU); about 4x that."""
STRESSED_MAX_VERTEX_DIFF_M = 0.25
"""The stressed model (slow test). Measured: 7.3e-2 m (PA-MPJPE vs FP32 7.2 mm); its random
heads amplify every FP16 rounding of the predicted UV (a pixel that changes texel), so this
bounds blow-ups, not accuracy."""


def _black_crop(config) -> np.ndarray:
    """An all-black RGB crop, normalised as the model's input."""
    mean = np.asarray(config.mean, np.float32)[:, None, None]
    std = np.asarray(config.std, np.float32)[:, None, None]
    h, w = config.input_size
    return np.broadcast_to((0.0 - mean) / std, (3, h, w))[None].astype(np.float32)


def _graphs(model, folder, stem: str):
    """The FP32 export (TensorRT 11 target, as ``--precision fp16``) and its FP16 graph."""
    import onnx

    from hmrt.export.audit import audit_model
    from hmrt.export.fp16_graph import convert_to_fp16
    from hmrt.export.onnx_export import ExportOptions, export_model

    options = ExportOptions(trt_version="11")
    fp32 = export_model(model, folder / f"{stem}.onnx", "bobw", "edge", options)
    half = convert_to_fp16(onnx.load(str(fp32.path)))
    onnx.checker.check_model(half, full_check=True)
    audit_model(half, "11")  # raises on a node TensorRT 11 cannot parse
    path = folder / f"{stem}_fp16.onnx"
    onnx.save(half, str(path))
    return fp32.path, path


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from hmrt.export.parity import validation_crops

    torch.manual_seed(0)
    model = build("bobw", "edge").eval()
    crops = validation_crops(4, tuple(model.config.input_size))
    images = np.concatenate([crops.images, _black_crop(model.config)])
    folder = tmp_path_factory.mktemp("bobw_fp16")
    return model, images, crops.source, folder


def _run(fp32_path, fp16_path, images):
    from hmrt.export.parity import ort_outputs

    return ort_outputs(fp32_path, images, 1), ort_outputs(fp16_path, images, 1)


def _check(ref, half, label, bound: float = MAX_VERTEX_DIFF_M):
    for graph, out in (("fp32", ref), ("fp16", half)):
        for name, value in out.items():
            assert np.isfinite(value).all(), (label, graph, name)
    diff = float(np.abs(half["vertices"] - ref["vertices"]).max())
    joints = np.abs(half["pose_joints"] - ref["pose_joints"])
    print(
        f"bobw edge FP16 graph, {label}: max |FP16 - FP32| vertices {diff:.2e} m, pose_joints "
        f"{joints[..., :2].max():.2e} px, {joints[..., 2].max():.2e} m"
    )
    assert diff <= bound, (label, diff)
    return diff


def test_fp16_graph_is_finite_on_crops_and_a_black_crop(setup):
    model, images, source, folder = setup
    fp32_path, fp16_path = _graphs(model, folder, "bobw_edge")
    ref, half = _run(fp32_path, fp16_path, images)
    _check(ref, half, f"{source} + black crop")


def test_fp16_graph_is_finite_when_nothing_is_seen(setup):
    model, images, _, folder = setup
    blind = copy.deepcopy(model)
    with torch.no_grad():
        blind.dmp.dp_mask_end[1].bias.fill_(-1e4)  # sigmoid -> 0: no pixel passes 0.5
        iuv, _, _, _ = blind.dmp(torch.from_numpy(images))
    assert float(iuv[:, 0].max()) == 0.0  # no texel will be occupied
    fp32_path, fp16_path = _graphs(blind, folder, "bobw_edge_blind")
    ref, half = _run(fp32_path, fp16_path, images[[0, -1]])
    _check(ref, half, "no person seen (crop 0 + black crop)")


@pytest.mark.slow
def test_fp16_graph_of_a_stressed_model(setup):
    from hmrt.export.parity import pa_mpjpe_mm

    model, images, _, folder = setup
    model = stressed(model, images)
    fp32_path, fp16_path = _graphs(model, folder, "bobw_edge_stressed")
    ref, half = _run(fp32_path, fp16_path, images)
    assert float(np.ptp(ref["vertices"], axis=0).max()) > 0.1  # the mesh follows the image
    _check(ref, half, "stressed", STRESSED_MAX_VERTEX_DIFF_M)
    print(f"  PA-MPJPE FP16 vs FP32 {pa_mpjpe_mm(half['joints3d'], ref['joints3d']):.2f} mm")
