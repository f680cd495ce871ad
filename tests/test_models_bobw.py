"""BoBW (``bobw``): outputs of both variants, training intermediates, the DMP-only stage, NaN-free
masked averages when nothing is seen, the loss, ONNX export parity in both scatter forms and a
Reconstructor run on the exported graph.

Default selection: edge variant; the paper variant's size and the matmul-scatter export are
``slow``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from bobw_helpers import stressed
from splat_helpers import check_splat_parity

from hmrt.train.models import build

EVAL_KEYS = {"vertices", "joints3d", "joints2d", "cam", "rotmats", "betas", "pose_joints"}


@pytest.fixture(scope="module")
def edge():
    torch.manual_seed(0)
    return build("bobw", "edge").eval()


def test_edge_eval_outputs(edge):
    with torch.no_grad():
        out = edge(torch.randn(2, 3, 224, 224))
    assert set(out) == EVAL_KEYS
    assert out["vertices"].shape == (2, 13348, 3)
    assert out["joints3d"].shape == (2, 24, 3) and out["joints2d"].shape == (2, 24, 2)
    assert out["rotmats"].shape == (2, 24, 3, 3) and out["betas"].shape == (2, 10)
    assert out["pose_joints"].shape == (2, 14, 3)
    assert all(torch.isfinite(v).all() for v in out.values())
    assert torch.allclose(out["joints3d"][:, 0], torch.zeros(2, 3), atol=1e-6)


def test_edge_training_outputs_and_dmp_stage(edge):
    edge.train()
    try:
        out = edge(torch.randn(2, 3, 224, 224))
        assert out["dense_maps"].shape == (2, 9, 56, 56)
        assert out["uv_dmp"].shape == (2, 9, 64, 64) and out["uv_ik"].shape == (2, 9, 64, 64)
        assert out["uv_maps"].shape == (2, 9, 64, 64)  # the edge preset's maps (paper: 128)
        assert out["j_initial"].shape == out["j_refine"].shape == (2, 14, 3)
        assert out["pose_aa"].shape == (2, 72)
        edge.set_stage("dmp")
        short = edge(torch.randn(2, 3, 224, 224))
        assert set(short) == {"iuv", "dense_maps"}
        with pytest.raises(ValueError):
            edge.set_stage("nope")
    finally:
        edge.set_stage("all")
        edge.eval()


def test_nothing_seen_gives_zero_visible_joints_and_no_nan(edge):
    """A mask head that sees no person: every LSP part is fully occluded in UV space; the
    masked averages divide by clamp(count, 1), so J_initial is 0 (not NaN) and the IK, the
    UVI and the outputs stay finite."""
    head = edge.dmp.dp_mask_end[1]
    saved = head.bias.detach().clone()
    try:
        with torch.no_grad():
            head.bias.fill_(-1e4)  # sigmoid -> 0 everywhere: no pixel passes the threshold
            edge.train()
            out = edge(torch.randn(2, 3, 224, 224))
        assert (out["j_visible"] == 0).all()
        assert (out["j_initial"] == 0).all()
        assert (out["uv_dmp"] == 0).all()
        assert all(torch.isfinite(v).all() for v in out.values() if torch.is_tensor(v))
    finally:
        with torch.no_grad():
            head.bias.copy_(saved)
        edge.eval()


def test_fp32_islands_are_declared(edge):
    islands = edge.fp32_modules()
    for name in ("warp", "parts_in", "ik_body", "template_uv", "distribute", "sampler"):
        assert name in islands, islands
    assert {"parts_out", "body", "pose_head"} <= set(islands)


@pytest.fixture(scope="module")
def batch(edge):
    """4 augmented synthetic samples (2 flipped) at the edge model's resolution."""
    from torch.utils.data import default_collate

    from hmrt.train.data.dataset import SyntheticDataset
    from hmrt.train.sources import augment_config

    ds = SyntheticDataset(seed=0, length=8, augment=augment_config(edge), aug_seed=0)
    return default_collate([ds[i] for i in range(4)])


def test_loss_terms_by_stage_and_gradients(edge, batch):
    from hmrt.train.losses import BoBWCriterion, build_criterion
    from hmrt.train.losses.bobw import STAGE_TERMS

    crit = build_criterion(edge, {"stage": "uvi"})
    assert isinstance(crit, BoBWCriterion)
    edge.train()
    try:
        edge.zero_grad(set_to_none=True)
        loss, terms = crit(edge(batch["image"]), batch)
        # weight 0 by default: hmrt's mesh terms, not in the paper
        extra = {"vertices", "map_l_parts", "mesh_joints3d", "mesh_joints2d"}
        want = set(STAGE_TERMS["uvi"]) - extra
        assert set(terms) == want and not crit.skipped
        assert torch.isfinite(loss) and all(torch.isfinite(v) for v in terms.values())
        loss.backward()
        # the UVI's last conv starts at zero (uvi_residual): the gradient reaches it first
        last = edge.uvi.uv_end[1]
        assert last.weight.grad.abs().sum() > 0 and last.bias.grad.abs().sum() > 0
        # the DMP stage: IUV and dense-map terms only, nothing reaches the IK or the UVI
        edge.set_stage("dmp")
        edge.zero_grad(set_to_none=True)
        loss, terms = crit(edge(batch["image"]), batch, pretrain=True)
        assert set(terms) == set(STAGE_TERMS["dmp"])
        loss.backward()
        assert all(p.grad is None for p in edge.uvi.parameters())
        assert any(p.grad is not None for p in edge.dmp.dense_heads.parameters())
    finally:
        edge.set_stage("all")
        edge.eval()


def test_decomr_mesh_terms_when_weighted(edge, batch):
    """hmrt's DecoMR terms (weight 0 in the paper's setting) are computed and reach the UVI
    once a config weights them (the DecoMR warm-start recipe does)."""
    from hmrt.train.losses import build_criterion

    weights = {"map_l_parts": 1.0, "mesh_joints3d": 1.0, "mesh_joints2d": 1.0}
    crit = build_criterion(edge, {"stage": "uvi", "weights": weights})
    edge.train()
    try:
        edge.zero_grad(set_to_none=True)
        loss, terms = crit(edge(batch["image"]), batch)
        assert set(weights) <= set(terms) and not crit.skipped
        assert all(torch.isfinite(terms[k]) and float(terms[k]) > 0 for k in weights)
        loss.backward()
        assert edge.uvi.uv_end[1].weight.grad.abs().sum() > 0
    finally:
        edge.eval()


def test_terms_vanish_at_the_ground_truth(edge, batch):
    """Perfect dense maps and UV maps, built from the labels, give (near) zero terms."""
    from hmrt.train.losses import build_criterion

    crit = build_criterion(edge)
    cache: dict = {}
    maps = crit.gt_maps(batch, cache)
    fg = (batch["iuv_index"] > 0).float()
    iuv = torch.cat([fg[:, None], batch["cont_uv"]], dim=1)
    if iuv.shape[-1] != 56:
        iuv = torch.nn.functional.interpolate(iuv, size=(56, 56), mode="nearest")
    pred = {"iuv": iuv, "uv_maps": maps}
    gt_iuv = crit._gt_iuv(pred, batch)
    pred["dense_maps"] = crit._read_at_gt_uv(maps, gt_iuv[1])
    for name in ("dense_l", "dense_j", "dense_d", "map_l", "map_j", "map_d", "map_l_parts"):
        assert float(crit.terms[name](pred, batch, cache)) < 1e-5, name
    # the GT joint map's per-part means are the GT LSP joints
    joints, _ = edge.parts_out(maps[:, 3:6], None)
    assert torch.allclose(joints, cache["lsp"], atol=1e-5)


@pytest.mark.slow
def test_paper_size():
    torch.manual_seed(0)
    model = build("bobw", "paper")
    counts = {n: sum(p.numel() for p in m.parameters()) for n, m in model.named_children()}
    # DMP = DecoMR's DPNet without the unused fc (33.51 M - 2.05 M) + three dense heads
    assert 31.0e6 < counts["dmp"] < 32.5e6, counts
    # inpaint 287,530 (Martinez, 2 stages of 256) + GIK-Net 4,336,722 (1024 wide)
    assert counts["ik"] == 4_624_252, counts
    # DecoMR's UVNet is 30.37 M with a 3-channel head (seed-bobw.md §1.5); BoBW's has 9 maps
    assert abs(counts["uvi"] - 30.37e6) < 0.01 * 30.37e6, counts


def _export(model, path, uv_scatter: str, trt: str):
    from hmrt.export.onnx_export import ExportOptions, export_model

    options = ExportOptions(opset=17, trt_version=trt, uv_scatter=uv_scatter)
    return export_model(model, path, "bobw", "edge", options)


@pytest.fixture(scope="module")
def stressed_edge(edge):
    """At random init the UVI's and GIK-Net's last layers are zero and the dense maps ~0 m, so
    the mesh would not depend on the splat: parity is measured on a copy whose every stage
    depends on the image (tests/bobw_helpers.py)."""
    from hmrt.export.parity import validation_crops

    crops = validation_crops(16, tuple(edge.config.input_size))
    return stressed(edge, crops.images), crops


@pytest.fixture(scope="module")
def edge_onnx(stressed_edge, tmp_path_factory):
    from hmrt.export.parity import torch_outputs

    model, crops = stressed_edge
    result = _export(model, tmp_path_factory.mktemp("bobw") / "bobw_edge.onnx", "add", "10")
    return result, crops, torch_outputs(model, crops.images, 4)


def _check_parity(model, result_path, crops, reference, batch):
    return check_splat_parity(
        model, model.dmp, result_path, crops, reference, batch, keys=("rotmats", "betas", "cam")
    )


@pytest.mark.parametrize("batch_size", [1, 4])
def test_edge_export_ort_parity(stressed_edge, edge_onnx, batch_size):
    model, _ = stressed_edge
    result, crops, reference = edge_onnx
    assert float(np.ptp(reference["vertices"], axis=0).max()) > 0.1  # the mesh follows the image
    assert result.outputs == [
        "vertices", "joints3d", "joints2d", "cam", "rotmats", "betas", "pose_joints"
    ]  # fmt: skip
    assert result.metadata["hmrt.pose_joints"] == "lsp14"
    err = _check_parity(model, result.path, crops, reference, batch_size)
    assert np.median(err) <= 5e-5  # stressed random weights: float noise, well under 1e-4 m


@pytest.mark.slow
def test_edge_export_matmul_scatter_parity(stressed_edge, tmp_path):
    from hmrt.export.parity import torch_outputs

    model, crops = stressed_edge
    result = _export(model, tmp_path / "bobw_edge_matmul.onnx", "matmul", "8.6")
    _check_parity(model, result.path, crops, torch_outputs(model, crops.images, 4), 4)


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
    assert res.rotmats.shape == (24, 3, 3) and res.betas.shape == (10,)
    assert np.isfinite(res.vertices).all() and np.isfinite(res.translation).all()
