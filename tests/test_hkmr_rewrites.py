"""HKMR's export rewrites equal the training form: the image-feature projection done once
(``export/rewrites/hkmr_feature_split.py``) and each pass's per-joint heads folded into one
Linear (``export/rewrites/hkmr_head_fold.py``), module by module, on the whole model in torch,
and in ONNX Runtime (``--hkmr-fold on`` vs ``off``); the flag reaches ``ExportOptions``.

Tolerance: 1e-5 on every output in metres, radians-scale rotations, betas and camera; crop
pixels (``joints2d``, ~112 px, where one float32 ulp is 7.6e-6) to 1e-3 px.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from model_helpers import measure_batchnorm, one_torch_thread, tiny_body_layer  # noqa: F401

from hmrt.export.rewrites import apply_rewrites
from hmrt.export.rewrites.apply import RewriteReport, apply_hkmr_fold
from hmrt.export.rewrites.hkmr_feature_split import SplitConditionedMLP
from hmrt.export.rewrites.hkmr_head_fold import FoldedJointHeads, fold_heads
from hmrt.train.models import build
from hmrt.train.models.hkmr.regressor import ConditionedMLP, JointHeads

TOL = 1e-5
PIXEL_TOL = 1e-3


def _within(a: dict, b: dict) -> dict[str, float]:
    diff = {k: float((torch.as_tensor(a[k]) - torch.as_tensor(b[k])).abs().max()) for k in a}
    for key, value in diff.items():
        assert value <= (PIXEL_TOL if key == "joints2d" else TOL), (key, diff)
    return diff


@pytest.mark.parametrize("widths,out", [((32,), 10), ((24, 24), None)])
def test_feature_split_equals_the_concatenation(widths, out):
    torch.manual_seed(0)
    mlp = ConditionedMLP(64, 20, widths, out).eval()
    split = SplitConditionedMLP.like(mlp).eval()
    phi, parts = torch.randn(5, 64), [torch.randn(5, 8), torch.randn(5, 12)]
    ref = mlp(mlp.prepare(phi), parts)
    assert (split(split.prepare(phi), parts) - ref).abs().max() <= TOL
    assert split.cond.in_features == 20 and split.feature.in_features == 64
    double = copy.deepcopy(mlp).double()
    split64 = SplitConditionedMLP.like(double)
    phi64, parts64 = phi.double(), [p.double() for p in parts]
    exact = (split64(split64.prepare(phi64), parts64) - double(phi64, parts64)).abs().max()
    assert exact <= 1e-12  # the same function, not an approximation


@pytest.mark.parametrize("hierarchy", ["all", "previous"])
@pytest.mark.parametrize("backward", [False, True])
@pytest.mark.parametrize("joints", [2, 4, 5])
def test_head_fold_equals_the_per_joint_heads(hierarchy, backward, joints):
    torch.manual_seed(joints)
    heads = JointHeads(16, joints, backward=backward, hierarchy=hierarchy, gain=1.0)
    for head in heads.heads:
        torch.nn.init.normal_(head.bias, std=0.5)
    folded = FoldedJointHeads.like(heads)
    psi = torch.randn(7, 16)
    assert (folded(psi) - heads(psi)).abs().max() <= TOL
    m, c = fold_heads(copy.deepcopy(heads).double())
    assert (
        psi.double() @ m.T + c - copy.deepcopy(heads).double()(psi.double())
    ).abs().max() < 1e-12


@pytest.fixture(scope="module")
def lively():
    """Tiny-body edge model whose heads move the pose by decimetres between inputs."""
    torch.manual_seed(0)
    model = build("hkmr", "edge", body=tiny_body_layer()).eval()
    for module in model.regressor.modules():
        if isinstance(module, JointHeads):
            for head in module.heads:
                torch.nn.init.xavier_uniform_(head.weight, gain=0.3)
                torch.nn.init.normal_(head.bias, std=0.05)
    for net in (model.regressor.shape, model.regressor.camera):
        torch.nn.init.xavier_uniform_(net.rest[-1].weight, gain=0.1)
    # BatchNorm statistics measured on random images: with the random-init running stats the
    # MobileNetV2 trunk gives every image nearly the same code.
    images = torch.randn(8, 3, 224, 224, generator=torch.Generator().manual_seed(5))
    return measure_batchnorm(model, images, batch=8)


@pytest.mark.parametrize("split,fold", [(True, False), (False, True), (True, True)])
def test_rewritten_model_equals_the_training_form(lively, split, fold):
    image = torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    deploy = copy.deepcopy(lively)
    report = RewriteReport()
    apply_hkmr_fold(deploy, report, split=split, fold=fold)
    kinds = {new for _, new in report.swapped.values()}
    expected = {"SplitConditionedMLP"} if split else set()
    assert kinds == expected | ({"FoldedJointHeads"} if fold else set())
    # 6 embeddings + S + C; 6 forward + 6 backward head sets.
    assert len(report.swapped) == 8 * split + 12 * fold
    with torch.no_grad():
        ref, out = lively(image), deploy(image)
    assert float((ref["rotmats"][0] - ref["rotmats"][1]).abs().max()) > 0.1  # lively
    _within(ref, out)


def test_apply_rewrites_flag(lively):
    on, report = apply_rewrites(lively)
    assert report.hkmr_fold and len(report.swapped) == 20
    off, report = apply_rewrites(lively, hkmr_fold=False)
    assert not report.hkmr_fold and report.swapped == {}
    assert type(off.regressor.shape) is ConditionedMLP
    assert type(on.regressor.chains["root"].backward_heads) is FoldedJointHeads


def test_ort_rewritten_graph_equals_the_training_graph(lively, tmp_path):
    import onnx

    from hmrt.export.onnx_export import ExportOptions, export_model
    from hmrt.export.parity import ort_outputs, torch_outputs

    images = torch.randn(4, 3, 224, 224, generator=torch.Generator().manual_seed(4)).numpy()
    paths = {}
    for fold in (False, True):
        opts = ExportOptions(hkmr_fold=fold)
        paths[fold] = export_model(lively, tmp_path / f"{fold}.onnx", "hkmr", "edge", opts).path
    off, on = ort_outputs(paths[False], images, 2), ort_outputs(paths[True], images, 2)
    _within(off, on)  # the rewrites: exact (1e-5)
    # ORT against torch: parity (the 1e-4 m; float32 sum order in the MobileNetV2
    # trunk gives ~2e-5 m on these lively heads)
    parity = {
        k: float(np.abs(np.asarray(v) - on[k]).max())
        for k, v in torch_outputs(lively, images, 2).items()
    }
    assert parity["vertices"] <= 1e-4 and parity["joints3d"] <= 1e-4, parity
    nodes = {f: len(onnx.load(str(p)).graph.node) for f, p in paths.items()}
    assert nodes[True] < 0.7 * nodes[False], nodes


def test_export_flag_reaches_the_options():
    import argparse

    from hmrt.export.cli_export import add_graph_arguments

    parser = argparse.ArgumentParser()
    add_graph_arguments(parser)
    assert parser.parse_args([]).hkmr_fold == "on"
    assert parser.parse_args(["--hkmr-fold", "off"]).hkmr_fold == "off"
    with pytest.raises(SystemExit):
        parser.parse_args(["--hkmr-fold", "maybe"])
    assert np.isclose(TOL, 1e-5)
