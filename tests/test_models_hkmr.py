"""HKMR (``hkmr``): the chain table, both variants' outputs and training keys, the regressor's
order of operations (forward/backward heads, root before children, children independent), size
and cost against the paper's budget, Rodrigues at exactly zero (torch FP32/FP16, gradients, an
FP16 ONNX graph), ONNX export parity on synth-val crops and the FP16 graph.

Default selection: edge everything and the paper variant's size; the paper export is ``slow``.
The rewrites (feature split, head folding) are tested in tests/test_hkmr_rewrites.py.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from model_helpers import (  # noqa: F401
    bundled_fp16_vs_fp32,
    measure_batchnorm,
    one_torch_thread,
    tiny_body_layer,
)

from hmrt.runtime.errors import InputError
from hmrt.train.models import OUTPUT_NAMES, build, build_from_config
from hmrt.train.models.hkmr import chains as C
from hmrt.train.models.hkmr.model import STEP_KEYS
from hmrt.train.models.hkmr.regressor import JointHeads, mean_pose_axis_angle
from hmrt.train.rotations import axis_angle_to_matrix

PAPER_PARAMS = 26.2e6  # Table 1
RESNET50_PARAMS = 23_508_032  # torchvision ResNet-50 without fc (seed-hkmr.md §1.9)
REGRESSOR_PARAMS = 2_712_007  # the §1.9 configuration (d = 128, S/C hidden 256)


@pytest.fixture(scope="module")
def tiny_edge():
    torch.manual_seed(0)
    return build("hkmr", "edge", body=tiny_body_layer()).eval()


def _check_eval(out: dict, n: int, verts: int) -> None:
    assert tuple(out) == OUTPUT_NAMES
    assert out["vertices"].shape == (n, verts, 3)
    assert out["joints3d"].shape == (n, 24, 3) and out["joints2d"].shape == (n, 24, 2)
    assert out["cam"].shape == (n, 3) and out["betas"].shape == (n, 10)
    assert out["rotmats"].shape == (n, 24, 3, 3)
    assert all(torch.isfinite(v).all() for v in out.values())
    assert torch.allclose(out["joints3d"][:, 0], torch.zeros(n, 3), atol=1e-6)
    rot = out["rotmats"]
    assert torch.allclose(rot.transpose(-1, -2) @ rot, torch.eye(3).expand_as(rot), atol=1e-5)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(n, 24), atol=1e-5)


# -- chain table ----------------------------------------------------------------------------


def test_chains_partition_the_smpl_tree():
    assert C.CHAIN_NAMES == ("root", "head", "right_arm", "left_arm", "right_leg", "left_leg")
    assert sorted(C.CHAIN_ORDER.tolist()) == list(range(24))
    assert [len(j) for _, j in C.CHAINS] == [4, 2, 5, 5, 4, 4]  # 12+6+15+15+12+12 = 72
    for name, joints in C.CHAINS:  # each chain is a path, proximal -> distal
        for parent, child in itertools.pairwise(joints):
            assert C.SMPL_PARENTS[child] == parent, (name, child)
        start = C.SMPL_PARENTS[joints[0]]
        assert start == (-1 if name == "root" else 9 if "arm" in name or name == "head" else 0)
    assert np.array_equal(C.CHAIN_ORDER[C.SMPL_FROM_CHAIN], np.arange(24))
    slices = C.chain_slices()
    assert slices["root"] == slice(0, 12) and slices["left_leg"] == slice(60, 72)


def test_mean_pose_is_hmrt_mean_as_axis_angle():
    from hmrt.train.models.danet.regressor import mean_pose_matrices

    aa = mean_pose_axis_angle("apose")
    assert torch.allclose(axis_angle_to_matrix(aa), mean_pose_matrices("apose"), atol=1e-6)
    assert torch.allclose(aa[0].abs(), torch.tensor([np.pi, 0, 0], dtype=torch.float32))


# -- outputs --------------------------------------------------------------------------------


def test_edge_eval_outputs_are_the_mean_body_untrained(tiny_edge):
    with torch.no_grad():
        out = tiny_edge(torch.randn(2, 3, 224, 224))
    _check_eval(out, 2, tiny_edge.body.layer.n_verts)
    # Near-zero heads: the mean pose, upright in the crop centre (image y grows downward).
    j2d = out["joints2d"][0]
    assert torch.allclose(j2d[0], torch.tensor([112.0, 112.0]), atol=3.0)
    assert j2d[15, 1] < j2d[0, 1] - 20


def test_training_outputs_every_outer_step(tiny_edge):
    m = tiny_edge
    t = m.config.outer_steps
    m.train()
    try:
        out = m(torch.randn(2, 3, 224, 224))
    finally:
        m.eval()
    assert set(out) == set(OUTPUT_NAMES) | set(STEP_KEYS)
    shapes = {
        "pose_aa_steps": (2, t, 24, 3),
        "rotmats_steps": (2, t, 24, 3, 3),
        "betas_steps": (2, t, 10),
        "cam_steps": (2, t, 3),
        "joints3d_steps": (2, t, 24, 3),
        "joints2d_steps": (2, t, 24, 2),
    }
    assert {k: tuple(out[k].shape) for k in STEP_KEYS} == shapes
    for key, final in (("rotmats", "rotmats_steps"), ("betas", "betas_steps"),
                       ("cam", "cam_steps"), ("joints3d", "joints3d_steps"),
                       ("joints2d", "joints2d_steps")):  # fmt: skip
        assert torch.equal(out[key], out[final][:, -1]), key
    assert torch.allclose(out["rotmats_steps"], axis_angle_to_matrix(out["pose_aa_steps"]))
    assert torch.allclose(out["joints3d_steps"][:, :, 0], torch.zeros(2, t, 3), atol=1e-6)
    # Absolute pose: the mean plus (small, untrained) residuals.
    mean = mean_pose_axis_angle(m.config.mean_pose)
    assert (out["pose_aa_steps"] - mean).abs().max() < 0.2
    loss = out["joints3d_steps"].abs().mean() + 1e-3 * out["joints2d_steps"].mean()
    loss = loss + out["betas_steps"].pow(2).mean() + out["pose_aa_steps"][:, :, 1:].pow(2).mean()
    loss.backward()
    reg = m.regressor
    grads = {
        "backbone": next(m.backbone.parameters()),
        "embed": reg.chains["left_arm"].embed.first.weight,
        "forward heads": reg.chains["root"].forward_heads.heads[3].weight,
        "backward heads": reg.chains["right_leg"].backward_heads.heads[0].weight,
        "shape": reg.shape.rest[-1].weight,
        "camera": reg.camera.rest[-1].weight,
    }
    for name, p in grads.items():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    m.zero_grad(set_to_none=True)


def test_fp32_islands_and_config_round_trip(tiny_edge):
    assert tiny_edge.fp32_modules() == {"rotation": "AxisAngleToMatrix", "body": "BodyHead"}
    again = build_from_config(tiny_edge.config.to_dict(), body=tiny_body_layer())
    assert again.config == tiny_edge.config
    assert set(again.state_dict()) == set(tiny_edge.state_dict())
    for bad in ({"pass_order": "backward"}, {"joint_hierarchy": "none"}, {"outer_steps": 0},
                {"backbone": "vgg"}, {"input_size": (200, 200)}, {"shape_update": "x"}):  # fmt: skip
        with pytest.raises(InputError):
            build("hkmr", "edge", body=tiny_body_layer(), **bad)


# -- regressor semantics --------------------------------------------------------------------


def test_head_widths_follow_eq1_and_the_ablations():
    heads = JointHeads(16, 5, backward=False, hierarchy="all", gain=1.0)
    assert [h.in_features for h in heads.heads] == [19, 19, 22, 25, 28]  # d + 3 max(p, 1)
    flat = JointHeads(16, 5, backward=False, hierarchy="previous", gain=1.0)
    assert [h.in_features for h in flat.heads] == [19] * 5
    cfg = {"body": tiny_body_layer()}
    fwd_only = build("hkmr", "edge", pass_order="forward", **cfg)
    assert all(ch.backward_heads is None for ch in fwd_only.regressor.chains.values())
    paper_like = build("hkmr", "edge", **cfg)
    phi = paper_like.backbone.out_channels  # 160: the edge preset's MobileNetV2 at width 0.5
    assert paper_like.regressor.chains["head"].embed.first.in_features == phi + 10 + 12 + 6


@pytest.mark.parametrize("backward", [False, True])
def test_a_pass_conditions_on_the_joints_before_it(backward):
    """Forward: head p reads the residuals of joints 0..p-1; backward: of joints p+1..K-1.
    Changing the head of the pass's last joint changes only that joint; changing the first
    head changes every joint after it in the pass."""
    torch.manual_seed(0)
    heads = JointHeads(8, 4, backward=backward, hierarchy="all", gain=1.0)
    psi = torch.randn(3, 8)
    base = heads(psi).reshape(3, 4, 3)
    last_joint = 0 if backward else 3  # the joint of heads[3], the last in the pass
    for p, changed in ((0, {0, 1, 2, 3}), (3, {last_joint})):
        with torch.no_grad():
            heads.heads[p].weight.add_(0.5)
            moved = heads(psi).reshape(3, 4, 3)
            heads.heads[p].weight.sub_(0.5)
        diff = {j for j in range(4) if not torch.allclose(moved[:, j], base[:, j])}
        assert diff == changed, (p, diff)


def test_children_use_the_current_root_and_not_each_other(tiny_edge):
    """Perturbing the left arm's regressor leaves every other chain's first-step pose alone;
    perturbing the root chain moves the children in the same outer step."""
    import copy

    reg = copy.deepcopy(tiny_edge.regressor)
    feature = torch.randn(2, reg.chains["root"].embed.feature_dim)
    with torch.no_grad():
        base = reg(feature)[0][0]  # step 1 pose, SMPL order (2, 24, 3)
        reg.chains["left_arm"].forward_heads.heads[0].bias.add_(0.3)
        arm = reg(feature)[0][0]
        reg.chains["left_arm"].forward_heads.heads[0].bias.sub_(0.3)
        reg.chains["root"].forward_heads.heads[0].bias.add_(0.3)
        root = reg(feature)[0][0]
    joints = dict(C.CHAINS)
    moved = {j for j in range(24) if not torch.allclose(arm[:, j], base[:, j])}
    assert moved == set(joints["left_arm"])
    moved = {j for j in range(24) if not torch.allclose(root[:, j], base[:, j])}
    assert set(joints["head"]) | set(joints["right_leg"]) <= moved


# -- size and cost --------------------------------------------------------------------------


def test_paper_size_matches_the_budget():
    from hmrt.train.models.flops import count_flops

    torch.manual_seed(0)
    paper = build("hkmr", "paper", body=tiny_body_layer()).eval()
    counts = paper.parameter_counts()
    assert counts["total"] == counts["inference"] == RESNET50_PARAMS + REGRESSOR_PARAMS
    assert abs(counts["total"] - PAPER_PARAMS) <= 0.1 * PAPER_PARAMS
    report = count_flops(paper)
    assert 8.0 < report.gflops < 8.5, report.gflops  # ResNet-50 at 224 + 0.05 regressor
    assert report.per_module["regressor"] < 0.1e9


def test_edge_is_cheap(tiny_edge):
    from hmrt.train.models.flops import count_flops

    assert tiny_edge.parameter_counts()["total"] <= 4e6
    assert count_flops(tiny_edge).gflops <= 2.0


def test_model_info_reports_hkmr(capsys):
    import json

    from hmrt.cli import main

    assert main(["model", "info", "hkmr", "--variant", "edge", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["input_size"] == [224, 224] and info["config"]["inner_passes"] == 4
    assert info["params_total"] <= 4e6 and info["gflops"] <= 2.0
    assert info["fp32_modules"] == {"rotation": "AxisAngleToMatrix", "body": "BodyHead"}


# -- Rodrigues at zero ----------------------------------------------------------------------


def test_rodrigues_is_finite_at_exactly_zero():
    from hmrt.train.models.hkmr.model import AxisAngleToMatrix

    eye = torch.eye(3)
    for dtype in (torch.float32, torch.float16):
        zero = torch.zeros(4, 3, dtype=dtype)
        rot = axis_angle_to_matrix(zero)
        assert rot.dtype == dtype and torch.equal(rot.float(), eye.expand(4, 3, 3)), dtype
        tiny = torch.full((2, 3), 1e-4, dtype=dtype)
        assert torch.isfinite(axis_angle_to_matrix(tiny)).all()
    island = AxisAngleToMatrix()(torch.zeros(2, 24, 3, dtype=torch.float16))
    assert island.dtype == torch.float32 and torch.equal(island, eye.expand(2, 24, 3, 3))
    r = torch.zeros(5, 3, requires_grad=True)
    axis_angle_to_matrix(r).pow(2).sum().backward()
    assert torch.isfinite(r.grad).all()
    # d R / d r at 0 is the hat map: R(e) ~ I + [e]x.
    jac = torch.autograd.functional.jacobian(axis_angle_to_matrix, torch.zeros(3))
    assert torch.isfinite(jac).all()
    assert torch.allclose(jac[2, 1], torch.tensor([1.0, 0.0, 0.0]))  # R_21 = +x
    assert torch.allclose(jac[0, 1], torch.tensor([0.0, 0.0, -1.0]))  # R_01 = -z


def test_rodrigues_fp16_onnx_graph_has_no_nan_at_zero(tmp_path):
    """The formula itself, exported and converted to an all-FP16 graph (no island): exact
    identity at zero and finite everywhere, in ONNX Runtime."""
    import onnx
    import onnxruntime as ort

    from hmrt.export.fp16_graph import convert_to_fp16

    class Rodrigues(torch.nn.Module):
        def forward(self, aa):
            return axis_angle_to_matrix(aa)

    path = tmp_path / "rodrigues.onnx"
    torch.onnx.export(
        Rodrigues(), (torch.zeros(2, 3),), str(path), dynamo=False, opset_version=17,
        input_names=["aa"], output_names=["rot"], dynamic_axes={"aa": {0: "n"}, "rot": {0: "n"}},
    )  # fmt: skip
    half = convert_to_fp16(onnx.load(str(path)))
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in half.graph.initializer) or any(
        n.op_type == "Cast" for n in half.graph.node
    )
    sess = ort.InferenceSession(half.SerializeToString(), providers=["CPUExecutionProvider"])
    aa = np.array(
        [[0, 0, 0], [1e-4, 0, 0], [0, 1e-2, 0], [0.3, -0.2, 0.1], [3.1, 0, 0]], np.float32
    )
    (rot,) = sess.run(None, {"aa": aa})
    assert np.isfinite(rot).all()
    assert np.array_equal(rot[0], np.eye(3, dtype=np.float32))
    ref = axis_angle_to_matrix(torch.from_numpy(aa)).numpy()
    assert np.abs(rot - ref).max() < 5e-3  # FP16 rounding


# -- export ---------------------------------------------------------------------------------


def stressed(model, images: np.ndarray, gain: float = 0.3):
    """A copy that behaves like a trained model on ``images``: BatchNorm statistics measured on
    them (random-init running stats make every crop look alike) and livelier heads, so poses
    differ between crops by decimetres and parity is not trivially small."""
    import copy

    torch.manual_seed(1)
    m = copy.deepcopy(model)
    for module in m.regressor.modules():
        if isinstance(module, JointHeads):
            for head in module.heads:
                torch.nn.init.xavier_uniform_(head.weight, gain=gain)
    for net in (m.regressor.shape, m.regressor.camera):
        torch.nn.init.xavier_uniform_(net.rest[-1].weight, gain=gain / 3)
    return measure_batchnorm(m, images)


@pytest.fixture(scope="module")
def edge_onnx(tmp_path_factory):
    from hmrt.export.onnx_export import ExportOptions, export_model
    from hmrt.export.parity import torch_outputs, validation_crops

    torch.manual_seed(0)
    edge = build("hkmr", "edge").eval()
    crops = validation_crops(16, tuple(edge.config.input_size))
    model = stressed(edge, crops.images)
    folder = tmp_path_factory.mktemp("hkmr")
    result = export_model(model, folder / "hkmr_edge.onnx", "hkmr", "edge", ExportOptions())
    return result, crops, torch_outputs(model, crops.images, 4), model, folder


@pytest.mark.parametrize("batch", [1, 4])
def test_edge_export_ort_parity(edge_onnx, batch):
    from hmrt.export.parity import max_abs_diff, ort_outputs

    result, crops, reference, _, _ = edge_onnx
    assert result.outputs == list(OUTPUT_NAMES)
    assert result.metadata["hmrt.model"] == "hkmr" and result.metadata["hmrt.opset"] == "17"
    assert set(result.islands) == {"rotation", "body"}
    assert any(new == "FoldedJointHeads" for _, new in result.swapped.values())
    spread = float(np.ptp(reference["joints3d"], axis=0).max())
    assert spread > 0.05, spread  # the stressed model's poses differ between crops
    diff = max_abs_diff(reference, ort_outputs(result.path, crops.images, batch))
    assert diff["vertices"] <= 1e-4 and diff["joints3d"] <= 1e-4, (crops.source, diff)
    assert diff["rotmats"] <= 1e-4 and diff["joints2d"] <= 1e-2, (crops.source, diff)


def test_edge_graph_ops(edge_onnx):
    import onnx

    graph = onnx.load(str(edge_onnx[0].path))
    ops = {n.op_type for n in graph.graph.node}
    assert not ops & {"NonZero", "Einsum", "ScatterND", "Loop", "If", "Tile", "SVD"}


def test_edge_fp16_graph_has_no_nan(edge_onnx):
    """The FP16 graph (``convert_to_fp16`` of the exported graph, what ``--precision fp16``
    writes: FP32 islands, FP16 elsewhere) on the same crops: finite, close to FP32."""
    import onnx

    from hmrt.export.fp16_graph import convert_to_fp16
    from hmrt.export.parity import ort_outputs, pa_mpjpe_mm

    result, crops, _, _, folder = edge_onnx
    half = convert_to_fp16(onnx.load(str(result.path)))
    path = folder / "hkmr_edge_fp16.onnx"
    onnx.save(half, str(path))
    out = ort_outputs(path, crops.images, 4)
    assert all(np.isfinite(v).all() for v in out.values())
    ref32 = ort_outputs(result.path, crops.images, 4)
    # the stressed random heads amplify every FP16 rounding of Φ (6 mm here with the
    # MobileNetV2 trunk); the trained weights' bound is the next test's
    assert pa_mpjpe_mm(out["joints3d"], ref32["joints3d"]) < 10.0


def test_bundled_edge_fp16_graph_keeps_the_accuracy(tmp_path):
    """The bundled trained weights: the FP16 graph on 16 synth-val crops is finite and moves
    PA-MPJPE (against the FP32 graph's joints) by well under the issue's 0.5 mm."""
    from hmrt.export.parity import pa_mpjpe_mm

    out, ref = bundled_fp16_vs_fp32("hkmr", tmp_path)
    assert all(np.isfinite(v).all() for v in out.values())
    assert pa_mpjpe_mm(out["joints3d"], ref["joints3d"]) < 0.5


@pytest.mark.slow
def test_paper_export_ort_parity(tmp_path):
    from hmrt.export.onnx_export import ExportOptions, export_model
    from hmrt.export.parity import max_abs_diff, ort_outputs, torch_outputs, validation_crops

    torch.manual_seed(0)
    paper = build("hkmr", "paper").eval()
    crops = validation_crops(16, (224, 224))
    model = stressed(paper, crops.images, gain=0.1)
    result = export_model(model, tmp_path / "hkmr_paper.onnx", "hkmr", "paper", ExportOptions())
    reference = torch_outputs(model, crops.images, 4)
    assert float(np.ptp(reference["joints3d"], axis=0).max()) > 0.05
    for batch in (1, 4):
        diff = max_abs_diff(reference, ort_outputs(result.path, crops.images, batch))
        assert diff["vertices"] <= 1e-4 and diff["joints3d"] <= 1e-4, (crops.source, diff)
