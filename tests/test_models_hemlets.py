"""HEMlets PoSh (``hemlets``): outputs of both variants, training intermediates, the joint tables,
the volume layout, size and cost against the official network, the official key layout, the
SO(3) projection, ONNX export parity and a Reconstructor run.

Default selection: edge everything, paper built once (parameters, keys, GFLOPs, eval outputs);
the paper export is ``slow``.
"""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest
import torch
from model_helpers import bundled_fp16_vs_fp32, measure_batchnorm, one_torch_thread  # noqa: F401

from hmrt.export.parity import validation_crops
from hmrt.runtime.errors import InputError
from hmrt.train.models import OUTPUT_NAMES, build, build_from_config
from hmrt.train.models.hemlets import joints as J
from hmrt.train.models.hemlets.posh import project_to_so3

OFFICIAL_POSE_PARAMS = 49_614_844  # official Network on CPU (seed-hemlets-posh.md §1.11)
OFFICIAL_GFLOPS = 60.2  # 30.1 GMACs analytic (§1.11), FLOP = 2 MAC
OFFICIAL_BONES_MM = {  # official avg_skeletonal_legth (§1.8), (child, parent) -> mm
    (1, 0): 132.949, (4, 0): 132.949, (7, 0): 233.471, (2, 1): 442.895, (3, 2): 454.206,
    (5, 4): 442.894, (6, 5): 454.207, (14, 8): 151.031, (11, 8): 151.034, (9, 8): 121.135,
    (10, 9): 115.002, (15, 14): 278.893, (16, 15): 251.729, (12, 11): 278.883, (13, 12): 251.733,
}  # fmt: skip
TRAIN_KEYS = {"heatmaps2d", "hemlets", "joints_vol", "rotmats_raw"}
EVAL_KEYS = (*OUTPUT_NAMES, "pose_joints")  # DaNet's keys and order, then the pose joints


@pytest.fixture(scope="module")
def edge():
    torch.manual_seed(0)
    return build("hemlets", "edge").eval()


@pytest.fixture(scope="module")
def paper():
    torch.manual_seed(0)
    return build("hemlets", "paper").eval()


def _check_eval(out: dict, n: int) -> None:
    assert tuple(out) == EVAL_KEYS
    assert out["pose_joints"].shape == (n, 18, 3)
    assert out["vertices"].shape == (n, 13348, 3)
    assert out["joints3d"].shape == (n, 24, 3) and out["joints2d"].shape == (n, 24, 2)
    assert out["cam"].shape == (n, 3) and out["betas"].shape == (n, 10)
    assert out["rotmats"].shape == (n, 24, 3, 3)
    assert all(torch.isfinite(v).all() for v in out.values())
    assert torch.allclose(out["joints3d"][:, 0], torch.zeros(n, 3), atol=1e-6)  # root-relative
    eye = torch.eye(3).expand(n, 24, 3, 3)
    rot = out["rotmats"]
    assert torch.allclose(rot.transpose(-1, -2) @ rot, eye, atol=1e-5)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(n, 24), atol=1e-5)


def test_edge_eval_and_train_outputs(edge):
    with torch.no_grad():
        out = edge(torch.randn(2, 3, 256, 256))
    _check_eval(out, 2)
    # The untrained model is the mean body, upright in the crop centre: pelvis near (128, 128),
    # head above it (image y grows downward).
    j2d = out["joints2d"][0]
    assert torch.allclose(j2d[0], torch.tensor([128.0, 128.0]), atol=2.0)
    assert j2d[15, 1] < j2d[0, 1] - 40
    edge.train()
    try:
        out = edge(torch.randn(2, 3, 256, 256))
    finally:
        edge.eval()
    assert set(out) == set(EVAL_KEYS) | TRAIN_KEYS
    # pose_joints are joints_vol in crop pixels (x, y) and root-relative metres (z).
    jv = out["joints_vol"].detach()
    expected = torch.stack(
        [(jv[..., 0] + 0.5) * 256, (jv[..., 1] + 0.5) * 256, jv[..., 2] * 2.0], -1
    )
    assert torch.allclose(out["pose_joints"].detach(), expected, atol=1e-4)
    assert out["heatmaps2d"].shape == (2, 18, 32, 32)
    assert out["hemlets"].shape == (2, 42, 32, 32)
    assert out["joints_vol"].shape == (2, 18, 3)
    assert float(out["joints_vol"].detach().abs().max()) <= 0.5
    assert out["rotmats_raw"].shape == (2, 24, 3, 3)
    loss = out["joints_vol"].sum() + out["hemlets"].mean() + out["vertices"].mean()
    loss.backward()  # every branch reaches the backbone
    assert edge.backbone.features[0][0].weight.grad is not None
    assert edge.posh.head.weight.grad is not None
    edge.zero_grad(set_to_none=True)


def test_train_maps_are_the_conv_fbi_channels_hemlets_first(edge):
    """Channel order: HEMlets 0..41 (part-major T^-1, T^0, T^+1), then the 18 2D heatmaps."""
    captured = {}
    hook = edge.conv_FBI.register_forward_hook(lambda m, i, o: captured.update(fb=o))
    edge.train()
    try:
        with torch.no_grad():
            out = edge(torch.randn(2, 3, 256, 256))
    finally:
        edge.eval()
        hook.remove()
    assert captured["fb"].shape[1] == edge.config.heatmap_channels == 60
    assert torch.equal(out["hemlets"], captured["fb"][:, :42])
    assert torch.equal(out["heatmaps2d"], captured["fb"][:, 42:])


def test_volume_layout_is_joint_major_then_depth(edge):
    """A sharp peak at logits channel ``j*D + d``, row y, column x gives joint j at
    ``(x/(W-1), y/(H-1), d/(D-1)) - 0.5`` (official grid): z from the channel sub-index."""
    depth, (h, w) = edge.config.depth_bins, edge.config.feat_size
    cells = {0: (3, 5, 7), 9: (30, 0, 31), 17: (16, 20, 2)}  # joint -> (d, y, x)
    logits = torch.full((2, 18 * depth, h, w), -30.0)  # batch 2: PoSh's BatchNorm1d trains
    for j, (d, y, x) in cells.items():
        logits[:, j * depth + d, y, x] = 30.0
    hook = edge.conv_tail.register_forward_hook(lambda m, i, o: logits)
    edge.train()
    try:
        with torch.no_grad():
            joints = edge(torch.randn(2, 3, 256, 256))["joints_vol"][0]
    finally:
        edge.eval()
        hook.remove()
    for j, (d, y, x) in cells.items():
        expected = torch.tensor([x / (w - 1), y / (h - 1), d / (depth - 1)]) - 0.5
        assert torch.allclose(joints[j], expected, atol=1e-5), (j, joints[j], expected)


def test_paper_matches_the_official_pose_network(paper):
    assert paper.pose_network_parameters() == OFFICIAL_POSE_PARAMS
    assert paper.volume_reg.dis_map.shape == (1, 18, 64)
    assert paper.conv_tail[3].out_channels == 18 * 64
    assert paper.config.feat_size == (64, 64)
    counts = paper.parameter_counts()
    assert counts["total"] == counts["inference"]  # nothing is training-only
    posh = counts["total"] - OFFICIAL_POSE_PARAMS
    assert 4e6 < posh < 7e6, posh  # FC 1078->1024, 2 residual blocks, 1024->229
    assert paper.mean == (0.485, 0.456, 0.406) and paper.std == (0.229, 0.224, 0.225)
    # The official normalisation on the 0..255 scale is the same numbers.
    assert np.allclose(np.array(paper.mean) * 255, [123.675, 116.28, 103.53])
    assert np.allclose(np.array(paper.std) * 255, [58.395, 57.12, 57.375])


def test_paper_gflops_and_eval_outputs(paper):
    from hmrt.train.models.flops import count_flops

    report = count_flops(paper)
    assert abs(report.gflops - OFFICIAL_GFLOPS) <= 0.1 * OFFICIAL_GFLOPS, report.gflops
    assert report.per_module["posh"] < 0.05e9  # PoSh is shallow (FLOPs)
    paper.train()
    try:
        out = paper(torch.randn(2, 3, 256, 256))
    finally:
        paper.eval()
    assert out["heatmaps2d"].shape == (2, 18, 64, 64) and out["hemlets"].shape == (2, 42, 64, 64)
    with torch.no_grad():
        _check_eval(paper(torch.randn(1, 3, 256, 256)), 1)


def test_paper_state_dict_has_the_official_keys(paper):
    path = resources.files("hmrt.train.models.hemlets") / "official_manifest.json"
    if not path.is_file():
        pytest.skip("official_manifest.json not written yet (tools/hemlets_official_manifest.py)")
    manifest = json.loads(path.read_text())
    official = {k: tuple(s) for k, s, _ in manifest["state_dict"]}
    ours = {k: tuple(v.shape) for k, v in paper.state_dict().items()}
    pose = {k: s for k, s in ours.items() if not k.startswith("posh.")}
    assert pose == official  # same 375 names and shapes; the body arrays are not state
    assert len(official) == 375


def test_edge_is_cheap(edge):
    from hmrt.train.models.flops import count_flops

    assert edge.parameter_counts()["total"] <= 6e6
    assert count_flops(edge).gflops <= 2.0
    assert edge.config.feat_size == (32, 32) and edge.volume_reg.dis_map.shape == (1, 18, 32)
    # 32^3 voxels per joint: the partition sum stays below the FP16 maximum (65,504).
    assert edge.config.depth_bins * 32 * 32 < 65504


def test_fp32_islands_are_declared(edge):
    assert edge.fp32_modules() == {
        "volume_reg": "SoftArgmax3d",
        "joints_to_crop": "VolumeToCrop",
        "posh.decode": "BodyParamDecoder",
        "body": "BodyHead",
    }


def test_config_round_trip_and_overrides(edge):
    again = build_from_config(edge.config.to_dict())
    assert again.config == edge.config
    assert set(again.state_dict()) == set(edge.state_dict())
    small = build("hemlets", "edge", depth_bins=16, heatmap_stride=16, posh_feature="backbone")
    assert small.config.feat_size == (16, 16) and small.conv_tail[3].out_channels == 18 * 16
    small.train()
    out = small(torch.randn(2, 3, 256, 256))
    assert out["hemlets"].shape == (2, 42, 16, 16) and out["joints_vol"].shape == (2, 18, 3)
    assert small.posh.fc_in[0].in_features == 54 + small.backbone.out_channels
    for bad in ({"heatmap_stride": 3}, {"backbone": "vgg"}, {"depth_bins": 1},
                {"input_size": (250, 250)}, {"posh_feature": "both"}):  # fmt: skip
        with pytest.raises(InputError):
            build("hemlets", "edge", **bad)


def test_model_info_reports_hemlets(capsys):
    from hmrt.cli import main

    assert main(["model", "info", "hemlets", "--variant", "edge", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["input_size"] == [256, 256] and info["config"]["depth_range_m"] == 2.0
    assert info["params_total"] < 6e6 and info["gflops"] <= 2.0
    assert info["fp32_modules"]["volume_reg"] == "SoftArgmax3d"


# -- joint tables ---------------------------------------------------------------------------


def test_joint_tables_are_consistent():
    assert len(J.HEMLETS_JOINT_NAMES) == J.NUM_JOINTS == 18
    assert len(J.HEMLETS_PARTS) == J.NUM_PARTS == 14 and len(set(J.HEMLETS_PARTS)) == 14
    # Parts are official drawing edges, parent first; the ones left out are named in joints.py.
    edges = {(p, c) for c, p in J.DRAWING_EDGES}
    assert set(J.HEMLETS_PARTS) <= edges
    assert edges - set(J.HEMLETS_PARTS) == {(7, 17), (17, 8), (9, 10)}
    perm = J.flip_permutation()
    assert np.array_equal(perm[perm], np.arange(18))
    part_perm = J.part_flip_permutation()
    assert np.array_equal(part_perm[part_perm], np.arange(14))
    names = J.HEMLETS_JOINT_NAMES
    for a, b in J.HEMLETS_FLIP_PAIRS:
        assert names[a].replace("right", "left") == names[b].replace("right", "left")


def test_body_to_hemlets_matches_the_official_skeleton():
    """On the bundled body's T-pose: numpy and torch agree, joint 17 is the shoulder midpoint,
    the bones are close to the official average lengths, and the map commutes with a flip."""
    from hmrt.runtime.body import BodyModel

    body = BodyModel(None)
    j24 = (body.J_regressor @ body.v_template).astype(np.float64)
    h18 = J.body_to_hemlets(j24)
    assert h18.shape == (18, 3) and h18.dtype == np.float64
    assert np.allclose(h18[17], 0.5 * (j24[16] + j24[17]))
    t18 = J.body_to_hemlets(torch.from_numpy(j24[None]).float())
    assert t18.shape == (1, 18, 3) and np.allclose(t18[0].numpy(), h18, atol=1e-6)
    assert np.allclose(J.BODY_TO_HEMLETS.sum(1), 1.0)  # affine: translation-equivariant
    for (c, p), mm in OFFICIAL_BONES_MM.items():
        length = 1000 * np.linalg.norm(h18[c] - h18[p])
        # A T-posed mean body vs H36M subjects' averages: within 30% per bone.
        assert abs(length - mm) <= 0.3 * mm, (J.HEMLETS_JOINT_NAMES[c], length, mm)
    mirror = np.array([-1.0, 1.0, 1.0])
    flipped_body = (j24 * mirror)[np.asarray(body.flip_joint)]
    flipped_h = (h18 * mirror)[J.flip_permutation()]
    assert np.allclose(J.body_to_hemlets(flipped_body), flipped_h, atol=1e-9)


def test_so3_projection():
    g = torch.Generator().manual_seed(0)
    raw = torch.randn(64, 3, 3, generator=g)
    rot = project_to_so3(raw)
    assert torch.allclose(rot.transpose(-1, -2) @ rot, torch.eye(3).expand(64, 3, 3), atol=1e-5)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(64), atol=1e-5)
    assert torch.allclose(project_to_so3(rot), rot, atol=1e-5)  # rotations are fixed points


# -- export ---------------------------------------------------------------------------------


def _stressed(model, images: np.ndarray, gain: float = 0.05):
    """A copy that behaves like a trained model on ``images``: BatchNorm statistics measured on
    them (random-init running stats make eval activations vanish, so every crop would give the
    same output and parity would be trivially small), sharper volumes and a livelier PoSh.

    A random network with measured statistics amplifies float32 rounding layer by layer (torch
    float32 vs float64 differ by ~5e-4 at ResNet-50's C5), and PoSh turns that into rotation
    error in proportion to its output ``gain``; 0.05 (edge) and 0.02 (paper) keep that floor
    well under the 1e-4 m bound while poses still differ by decimetres between crops."""
    import copy

    torch.manual_seed(1)
    m = copy.deepcopy(model)
    torch.nn.init.normal_(m.conv_tail[3].weight, std=0.05)
    torch.nn.init.xavier_uniform_(m.posh.head.weight, gain=gain)
    return measure_batchnorm(m, images)


def _export(model, path, variant: str):
    from hmrt.export.onnx_export import ExportOptions, export_model

    return export_model(model, path, "hemlets", variant, ExportOptions(opset=17))


@pytest.fixture(scope="module")
def edge_onnx(edge, tmp_path_factory):
    from hmrt.export.parity import torch_outputs

    crops = validation_crops(16, tuple(edge.config.input_size))
    model = _stressed(edge, crops.images)
    result = _export(model, tmp_path_factory.mktemp("hemlets") / "hemlets_edge.onnx", "edge")
    return result, crops, torch_outputs(model, crops.images, 4)


@pytest.mark.parametrize("batch", [1, 4])
def test_edge_export_ort_parity(edge_onnx, batch):
    from hmrt.export.parity import max_abs_diff, ort_outputs, pose_joints_diff

    result, crops, reference = edge_onnx
    assert result.outputs == list(EVAL_KEYS)
    assert result.metadata["hmrt.opset"] == "17" and result.metadata["hmrt.model"] == "hemlets"
    assert result.metadata["hmrt.input_size"] == "256,256"
    assert set(result.islands) == {"volume_reg", "joints_to_crop", "posh.decode", "body"}
    spread = float(np.ptp(reference["joints3d"], axis=0).max())
    assert spread > 0.01, spread  # the stressed model's outputs differ between crops
    got = ort_outputs(result.path, crops.images, batch)
    diff = max_abs_diff(reference, got)
    assert diff["vertices"] <= 1e-4 and diff["joints3d"] <= 1e-4, (crops.source, diff)
    assert diff["rotmats"] <= 1e-4 and diff["joints2d"] <= 1e-2, (crops.source, diff)
    # The pose network's joints: x, y crop pixels, z root-relative metres.
    pose = pose_joints_diff(reference["pose_joints"], got["pose_joints"])
    assert pose["pose_joints_px"] <= 1e-3 and pose["pose_joints_m"] <= 1e-4, (crops.source, pose)
    assert float(np.ptp(reference["pose_joints"][..., :2], axis=0).max()) > 1.0  # crops differ


def test_edge_export_labels_the_pose_joints(edge_onnx):
    """``pose_joints (N, 18, 3)`` is an output and the metadata names its joints and units."""
    import onnx

    from hmrt.runtime.model_info import POSE_JOINTS_UNITS, onnx_contract

    result, _, _ = edge_onnx
    graph = onnx.load(str(result.path))
    (out,) = [o for o in graph.graph.output if o.name == "pose_joints"]
    dims = [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim]
    assert dims == ["batch", 18, 3]
    meta = {p.key: p.value for p in graph.metadata_props}
    assert meta["hmrt.pose_joints"] == "hemlets18"
    assert meta["hmrt.pose_joint_names"].split(",") == list(J.HEMLETS_JOINT_NAMES)
    assert meta["hmrt.pose_joints_units"] == POSE_JOINTS_UNITS == "crop_px,crop_px,m_root_relative"
    info = onnx_contract(str(result.path), graph)
    assert info.pose_joint_set == "hemlets18" and info.pose_joint_names == J.HEMLETS_JOINT_NAMES


def test_edge_graph_has_no_unsupported_ops(edge_onnx):
    import onnx

    result, _, _ = edge_onnx
    graph = onnx.load(str(result.path))
    ops = {n.op_type for n in graph.graph.node}
    assert not ops & {"NonZero", "Einsum", "ScatterND", "Loop", "If", "Tile", "SVD"}
    assert "ConvTranspose" in ops


def test_reconstructor_runs_the_exported_edge_model(edge_onnx):
    from hmrt.export.parity import ort_outputs
    from hmrt.runtime import Reconstructor

    result, _, _ = edge_onnx
    rec = Reconstructor(
        result.path, backend="onnxruntime-cpu", threads=1, detector="none", smoothing="default"
    )
    frame = np.full((240, 320, 3), 90, np.uint8)
    frame[40:220, 120:200] = (200, 180, 160)
    for _ in range(2):
        res = rec(frame, bbox=(100, 30, 220, 230))
    assert res.vertices.shape == (13348, 3) and res.rotmats.shape == (24, 3, 3)
    assert np.isfinite(res.vertices).all() and np.isfinite(res.translation).all()
    assert res.pose_joints.shape == (18, 3) and res.pose_joint_set == "hemlets18"
    assert res.pose_joint_names == J.HEMLETS_JOINT_NAMES
    assert res.to_json()["pose_joint_set"] == "hemlets18"
    # Full-image pixels: the crop the model saw, mapped back by hand (x0 + px * side / 256).
    bbox = (100, 30, 220, 230)
    (single,) = rec.reconstruct_batch(frame, [bbox])
    cx, cy, side = rec._box_from_bbox(bbox)
    crop = np.empty((1, 3, 256, 256), np.float32)
    rec.pre(frame, np.array([cx, cy, side]), crop[0])
    raw = ort_outputs(result.path, crop, 1)["pose_joints"][0]
    x0, y0 = cx - side / 2, cy - side / 2
    expected = np.stack([x0 + raw[:, 0] * side / 256, y0 + raw[:, 1] * side / 256, raw[:, 2]], 1)
    assert np.allclose(single.pose_joints, expected, atol=1e-3), (single.pose_joints, expected)
    assert np.allclose(single.pose_joints, res.pose_joints, atol=1e-3)  # never smoothed
    rec.close()


@pytest.mark.slow
def test_paper_export_ort_parity(paper, tmp_path):
    from hmrt.export.parity import max_abs_diff, ort_outputs, torch_outputs

    crops = validation_crops(8, tuple(paper.config.input_size))
    model = _stressed(paper, crops.images, gain=0.02)
    result = _export(model, tmp_path / "hemlets_paper.onnx", "paper")
    reference = torch_outputs(model, crops.images, 2)
    assert float(np.ptp(reference["joints3d"], axis=0).max()) > 0.01
    for batch in (1, 2):
        diff = max_abs_diff(reference, ort_outputs(result.path, crops.images, batch))
        assert diff["vertices"] <= 1e-4 and diff["joints3d"] <= 1e-4, (crops.source, diff)


def test_bundled_edge_fp16_graph_keeps_the_accuracy(tmp_path):
    """The bundled trained weights: the FP16 graph (volumetric head an FP32 island) on 16
    synth-val crops is finite and moves PA-MPJPE, mesh joints and the pose network's joints,
    by well under the issue's 0.5 mm against the FP32 graph."""
    from hmrt.export.parity import pa_mpjpe_mm

    out, ref = bundled_fp16_vs_fp32("hemlets", tmp_path)
    assert all(np.isfinite(v).all() for v in out.values())
    assert pa_mpjpe_mm(out["joints3d"], ref["joints3d"]) < 0.5
    # pose_joints: x, y in crop pixels, z in metres (worst joint: 0.1 px, 0.3 mm measured on
    # an early checkpoint of the recipe)
    pose, pose_ref = out["pose_joints"], ref["pose_joints"]
    assert np.abs(pose[..., :2] - pose_ref[..., :2]).max() < 0.5
    assert np.abs(pose[..., 2] - pose_ref[..., 2]).max() < 2e-3
