"""DecoMR (``decomr``): both variants' outputs, training intermediates, size and cost against the
official model, the official key layout, ONNX export parity and a Reconstructor run.

Default selection: edge variant everything, paper variant built once (parameters, eval keys,
official keys); the paper GFLOPs count and the matmul-scatter export are ``slow``.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch
from splat_helpers import check_splat_parity

from hmrt.train.models import build

OFFICIAL_PARAMS = 63_882_193  # official CNet + LNet (seed-decomr.md §3.3), incl. unused resnet.fc
OFFICIAL_FC = 2_049_000
OFFICIAL_GFLOPS = 54.4


@pytest.fixture(scope="module")
def edge():
    torch.manual_seed(0)
    return build("decomr", "edge").eval()


@pytest.fixture(scope="module")
def paper():
    torch.manual_seed(0)
    return build("decomr", "paper").eval()


def _check_eval(out: dict, n: int, n_verts: int) -> None:
    assert set(out) == {"vertices", "joints3d", "joints2d", "cam"}  # no rotmats/betas
    assert out["vertices"].shape == (n, n_verts, 3)
    assert out["joints3d"].shape == (n, 24, 3)
    assert out["joints2d"].shape == (n, 24, 2)
    assert out["cam"].shape == (n, 3)
    assert all(torch.isfinite(v).all() for v in out.values())
    assert torch.allclose(out["joints3d"][:, 0], torch.zeros(n, 3), atol=1e-6)  # root-relative


def test_edge_eval_and_train_outputs(edge):
    n_verts = edge.sampler.index.shape[0]
    assert n_verts == 13348  # the bundled body's vertices, from the body file
    with torch.no_grad():
        _check_eval(edge(torch.randn(2, 3, 224, 224)), 2, n_verts)
    edge.train()
    try:
        out = edge(torch.randn(2, 3, 224, 224))
    finally:
        edge.eval()
    assert out["iuv"].shape == (2, 3, 56, 56)
    iuv = out["iuv"].detach()
    assert float(iuv.min()) >= 0.0 and float(iuv.max()) <= 1.0  # sigmoid
    assert out["uv_features"].shape == (2, 32 + 3, 64, 64)  # half-width ResNet-18 decoder: 32
    occupancy = out["uv_features"][:, -1]
    assert set(occupancy.unique().tolist()) <= {0.0, 1.0}
    assert out["location_map"].shape == (2, 3, 64, 64)  # the edge preset's map (paper: 128)
    assert out["vertices_raw"].shape == (2, n_verts, 3)
    out["vertices"].sum().backward()  # gradients reach the backbone through the location map
    assert edge.cnet.body.features[0][0].weight.grad is not None  # MobileNetV2's first conv
    edge.zero_grad(set_to_none=True)


def test_edge_encoder_is_danet_edges_and_resnet_still_builds():
    """The edge CNet's MobileNetV2 has DaNet-edge's names and shapes (the default weights start
    from its trained encoder); the earlier half-width ResNet-18 CNet stays one override away."""
    from hmrt.train.checkpoint import load_module_weights_into

    model = build("decomr", "edge")
    danet = build("danet", "edge").state_dict()
    src = "img2iuv.iuv_est.body."
    want = {k[len(src) :]: v.shape for k, v in danet.items() if k.startswith(src)}
    have = {k[len("cnet.body.") :]: v.shape for k, v in model.state_dict().items()}
    have = {k: v for k, v in have.items() if ("cnet.body." + k) in model.state_dict()}
    assert have == want
    danet_ckpt = Path(__file__).resolve().parents[1] / "assets" / "weights" / "danet_edge.pt"
    assert load_module_weights_into(model, "cnet.body", f"{danet_ckpt}:{src[:-1]}") == len(want)
    # the decoder reads a 1x1 lateral per stride from 4 to 32, at ResNet-18's halved widths
    assert [lat[0].out_channels for lat in model.cnet.lateral] == [32, 64, 128, 256]
    resnet = build("decomr", "edge", backbone="resnet18", uv_res=128)  # the first edge preset
    assert not hasattr(resnet.cnet, "body") and resnet.parameter_counts()["total"] == 3_362_409
    with torch.no_grad():
        _check_eval(resnet.eval()(torch.randn(1, 3, 224, 224)), 1, 13348)


def test_fp32_islands_are_declared(edge):
    assert edge.fp32_modules() == {
        "lnet.warp": "FeatureWarp",
        "sampler": "UVToVertices",
        "body": "MeshHead",
    }


def test_paper_matches_official_size_and_outputs(paper):
    counts = paper.parameter_counts()
    # hmrt does not build the official ResNet's unused classifier: exactly official minus fc
    assert counts["total"] == OFFICIAL_PARAMS - OFFICIAL_FC
    assert abs(counts["total"] - OFFICIAL_PARAMS) <= 0.1 * OFFICIAL_PARAMS
    with torch.no_grad():
        _check_eval(paper(torch.randn(1, 3, 224, 224)), 1, 13348)


def test_paper_loads_the_official_layout_by_renames(paper):
    from hmrt.train.models.decomr.official_keys import convert_official_state_dict

    path = resources.files("hmrt.train.models.decomr") / "official_manifest.json"
    manifest = json.loads(path.read_text())
    state = {k: torch.zeros(s, dtype=getattr(torch, d)) for k, s, d in manifest["state_dict"]}
    assert len(state) == 555  # 394 CNet + 161 LNet entries (seed-decomr.md §5)
    converted = convert_official_state_dict(state)
    ours = paper.state_dict()
    assert set(converted) == set(ours)
    assert all(converted[k].shape == ours[k].shape for k in ours)


@pytest.mark.slow
def test_paper_gflops_match_official(paper):
    from hmrt.train.models.flops import count_flops

    gflops = count_flops(paper).gflops
    assert abs(gflops - OFFICIAL_GFLOPS) <= 0.1 * OFFICIAL_GFLOPS, gflops


def test_edge_is_much_cheaper(edge):
    from hmrt.train.models.flops import count_flops

    assert edge.parameter_counts()["total"] < 4e6  # fp32 weights under the 25 MB cap
    assert count_flops(edge).gflops < 2.5


def test_axiswise_group_norm_equals_group_norm():
    from hmrt.export.rewrites.group_norm import AxiswiseGroupNorm

    gn = torch.nn.GroupNorm(4, 32).double()
    torch.nn.init.normal_(gn.weight)
    torch.nn.init.normal_(gn.bias)
    x = torch.randn(2, 32, 16, 12, dtype=torch.float64) * 3 + 1
    assert torch.allclose(AxiswiseGroupNorm.like(gn)(x), gn(x), atol=1e-12)


def _export(model, path, uv_scatter: str, trt: str):
    from hmrt.export.onnx_export import ExportOptions, export_model

    options = ExportOptions(opset=17, trt_version=trt, uv_scatter=uv_scatter)
    return export_model(model, path, "decomr", "edge", options)


@pytest.fixture(scope="module")
def edge_and_crops(edge):
    """The random-init edge model and 16 synth-val crops. Its mask is on nearly everywhere, so
    every pixel splats and a crop may hold a near tie (tests/splat_helpers.py); measured
    BatchNorm statistics would make the untrained LNet's GroupNorms amplify float noise to
    ~1e-4 m, so parity on trained weights is `python -m hmrt.export.parity` (docs)."""
    from hmrt.export.parity import validation_crops

    return edge, validation_crops(16, tuple(edge.config.input_size))


@pytest.fixture(scope="module")
def edge_onnx(edge_and_crops, tmp_path_factory):
    from hmrt.export.parity import torch_outputs

    model, crops = edge_and_crops
    result = _export(model, tmp_path_factory.mktemp("decomr") / "decomr_edge.onnx", "add", "10")
    return result, crops, torch_outputs(model, crops.images, 4)


@pytest.mark.parametrize("batch", [1, 4])
def test_edge_export_ort_parity(edge_and_crops, edge_onnx, batch):
    model, _ = edge_and_crops
    result, crops, reference = edge_onnx
    assert result.outputs == ["vertices", "joints3d", "joints2d", "cam"]
    assert result.metadata["hmrt.opset"] == "17"
    assert float(np.ptp(reference["vertices"], axis=0).max()) > 0.1  # the mesh follows the image
    err = check_splat_parity(model, model.cnet, result.path, crops, reference, batch)
    assert np.median(err) <= 1e-5


@pytest.mark.slow
def test_edge_export_matmul_scatter_parity(edge_and_crops, tmp_path):
    from hmrt.export.parity import torch_outputs

    model, crops = edge_and_crops
    result = _export(model, tmp_path / "decomr_edge_matmul.onnx", "matmul", "8.6")
    reference = torch_outputs(model, crops.images, 4)
    check_splat_parity(model, model.cnet, result.path, crops, reference, 4)


def test_reconstructor_runs_the_exported_edge_model(edge_onnx):
    from hmrt.runtime import Reconstructor

    result, _, _ = edge_onnx
    rec = Reconstructor(
        result.path, backend="onnxruntime-cpu", threads=1, detector="none", smoothing="default"
    )
    frame = np.full((240, 320, 3), 90, np.uint8)
    frame[40:220, 120:200] = (200, 180, 160)
    for _ in range(2):  # the second call goes through the smoother with state
        res = rec(frame, bbox=(100, 30, 220, 230))
    assert res.vertices.shape == (13348, 3) and res.joints2d.shape == (24, 2)
    assert res.rotmats is None and res.betas is None
    assert np.isfinite(res.vertices).all() and np.isfinite(res.translation).all()


def test_bundled_weights_fp16_graph_keeps_accuracy_and_empty_texels_finite(tmp_path):
    """The bundled DecoMR-edge weights through the FP16 graph: finite, joints close to the FP32
    graph's on 16 synth-val crops, and a black crop (no texel receives a feature) finite.

    FP16 and FP32 disagree by ~3 mm PA-MPJPE here (measured 3.1) because a pixel whose UV moves
    across a texel boundary splats elsewhere; against the ground truth the accuracy changes by
    +0.035 mm on 512 crops (`python -m hmrt.export.fp16_report`, docs/models/decomr.md)."""
    import onnxruntime as ort
    from model_helpers import bundled_fp16_vs_fp32

    from hmrt.export.parity import pa_mpjpe_mm

    out, ref = bundled_fp16_vs_fp32("decomr", tmp_path)
    assert all(np.isfinite(v).all() for v in out.values())
    assert pa_mpjpe_mm(out["joints3d"], ref["joints3d"]) < 10.0
    session = ort.InferenceSession(str(tmp_path / "fp16.onnx"), providers=["CPUExecutionProvider"])
    black = np.zeros((1, 3, 224, 224), np.float32) - 2.0  # normalised black
    assert all(np.isfinite(v).all() for v in session.run(None, {"image": black}))
