"""DaNet (edge variant, real body layer on a tiny body): contract, training outputs, export rules."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from model_helpers import build_danet, image, one_torch_thread, tiny_body_layer  # noqa: F401

from hmrt.runtime.errors import InputError
from hmrt.train.models import OUTPUT_NAMES, build, build_from_config, make_config
from hmrt.train.models.danet import tables

TRAIN_KEYS = {
    "iuv_index": (25, 28, 28),
    "iuv_u": (25, 28, 28),
    "iuv_v": (25, 28, 28),
    "iuv_ann": (15, 28, 28),
    "heatmaps": (24, 28, 28),
    "roi_centres": (24, 2),
    "roi_theta": (24, 2, 3),
    "part_index": (24, 7, 20, 20),
    "part_u": (24, 7, 20, 20),
    "part_v": (24, 7, 20, 20),
    "partdrop_keep": (25,),
}


@pytest.fixture(scope="module")
def edge():
    return build_danet("edge").eval()


def _check_eval_outputs(out: dict, batch: int, n_verts: int) -> None:
    assert list(out) == list(OUTPUT_NAMES)
    shapes = {
        "vertices": (batch, n_verts, 3),
        "joints3d": (batch, 24, 3),
        "joints2d": (batch, 24, 2),
        "cam": (batch, 3),
        "rotmats": (batch, 24, 3, 3),
        "betas": (batch, 10),
    }
    for key, shape in shapes.items():
        assert tuple(out[key].shape) == shape, key
        assert out[key].dtype == torch.float32 and torch.isfinite(out[key]).all(), key


def test_eval_outputs_follow_the_contract(edge):
    with torch.no_grad():
        out = edge(image(2))
    _check_eval_outputs(out, 2, tiny_body_layer().n_verts)
    # Root-relative, and joints2d is the weak-perspective projection in crop pixels.
    assert torch.allclose(out["joints3d"][:, 0], torch.zeros(2, 3))
    s, t = out["cam"][:, None, :1], out["cam"][:, None, 1:]
    expected = (s * (out["joints3d"][..., :2] + t) + 1.0) * 112.0
    torch.testing.assert_close(out["joints2d"], expected)
    # Rotations are proper (6D + Gram-Schmidt) and eval is deterministic.
    r = out["rotmats"]
    torch.testing.assert_close(
        r @ r.transpose(-1, -2), torch.eye(3).expand_as(r), atol=1e-5, rtol=0
    )
    with torch.no_grad():
        again = edge(image(2))
    assert all(torch.equal(out[k], again[k]) for k in OUTPUT_NAMES)


def test_mean_pose_starts_upright_facing_the_camera():
    model = build_danet("edge", rot_repr="9d").eval()
    with torch.no_grad():
        out = model(image(1))
    # Heads start near zero, so the pose is the mean: root rotated 180 degrees about X.
    root = out["rotmats"][0, 0]
    torch.testing.assert_close(root, torch.diag(torch.tensor([1.0, -1.0, -1.0])), atol=0.05, rtol=0)
    assert model.config.rot_repr == "9d" and model.regressor.rotation.mean_pose.shape == (1, 216)


def test_train_outputs_and_gradient_reach_every_parameter():
    model = build_danet("edge").train()
    out = model(image(2, seed=1))
    for key, shape in TRAIN_KEYS.items():
        assert tuple(out[key].shape) == (2, *shape), key
    assert [tuple(r.shape) for r in out["refine_rotmats"]] == [(2, 24, 3, 3)]
    assert [tuple(p.shape) for p in out["refine_positions"]] == [(2, 24, 3), (2, 24, 3)]
    assert set(OUTPUT_NAMES) <= set(out)
    loss = sum(
        t.float().mean()
        for v in out.values()
        for t in (v if isinstance(v, list) else [v])
        if t.is_floating_point()
    )
    loss.backward()
    missing = [
        name
        for name, p in model.named_parameters()
        if p.grad is None or not torch.isfinite(p.grad).all() or not p.grad.abs().sum() > 0
    ]
    assert missing == [], f"parameters without gradient: {missing}"


def test_no_affine_grid_and_no_data_dependent_ops(edge, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("F.affine_grid must not be called")

    monkeypatch.setattr(F, "affine_grid", forbidden)
    monkeypatch.setattr(torch, "affine_grid_generator", forbidden)
    x = image(1)
    with torch.no_grad():
        edge(x)
        graph = str(torch.jit.trace(edge, (x,), strict=False, check_trace=False).inlined_graph)
    for op in ("affine_grid", "nonzero", "index_put", "masked_scatter", "masked_select", "rand"):
        assert f"aten::{op}" not in graph, op
    assert "aten::grid_sampler" in graph


def test_fp32_islands_stay_fp32_under_bf16_autocast(edge):
    islands = edge.fp32_modules()
    assert set(islands) == {
        "img2iuv.soft_argmax",
        "img2iuv.roi_theta",
        "img2iuv.roi_pool",
        "regressor.rotation",
        "body",
    }
    seen: dict[str, list[torch.dtype]] = {}
    modules = dict(edge.named_modules())

    def hook(name):
        def record(module, args, output):
            outs = output if isinstance(output, tuple) else (output,)
            seen[name] = [t.dtype for t in outs if torch.is_tensor(t)]

        return record

    handles = [modules[n].register_forward_hook(hook(n)) for n in [*islands, "img2iuv.iuv_est"]]
    try:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            out = edge(image(1))
    finally:
        for h in handles:
            h.remove()
    assert seen["img2iuv.iuv_est"] == [torch.bfloat16]  # autocast is active around the islands
    for name in islands:
        assert seen[name] and all(d == torch.float32 for d in seen[name]), name
    assert out["vertices"].dtype == out["rotmats"].dtype == torch.float32


def _official_theta(centres, onehot, ratio, offset):
    """Loop transcription of the official affine_para + hidden test (eval mode, no jitter)."""
    n = centres.shape[0]
    extent = centres.max(dim=1).values - centres.min(dim=1).values
    box = extent.max(dim=1).values / 2.0
    thetas = []
    for k in range(24):
        c = centres[:, k]
        if k == 0:
            s = box.clone()
        else:
            dc = torch.norm(centres[:, tables.CHILDREN[k]] - c, dim=1) / 2.0
            dp = torch.norm(centres[:, tables.PARENTS[k]] - c, dim=1) / 2.0
            s = 2.0 * torch.max(dc, dp)
        s = s * F.relu(ratio[k]) + F.relu(offset[k])
        score_map = onehot[:, list(tables.SMPL2DP_PART[k])].max(dim=1).values[:, None]
        score = F.grid_sample(score_map, c[:, None, None], align_corners=True).reshape(n)
        if k != 0:
            hidden = score < 0.5
            s[hidden] = 0.8 * box[hidden]
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0] = s
        theta[:, 1, 1] = s
        theta[:, :, 2] = c
        thetas.append(theta)
    return torch.stack(thetas, dim=1)


def test_roi_theta_matches_official_rule_with_hidden_joints(edge):
    g = torch.Generator().manual_seed(0)
    n, h = 3, 28
    centres = 1.6 * torch.rand(n, 24, 2, generator=g) - 0.8
    index = torch.randint(0, 25, (n, h, h), generator=g)
    # Joint 5 (R_Knee, own parts 7,9,11,13) sits exactly on a pixel labelled 7: visible.
    px, py = 20, 9
    index[0, py, px] = 7
    centres[0, 5] = torch.tensor([2 * px / (h - 1) - 1, 2 * py / (h - 1) - 1])
    # Joint 4 (L_Knee) sits on background: hidden, scale falls back to 0.8 * box.
    index[0, 3, 3] = 0
    centres[0, 4] = torch.tensor([2 * 3 / (h - 1) - 1, 2 * 3 / (h - 1) - 1])
    onehot = F.one_hot(index, 25).permute(0, 3, 1, 2).float()
    roi = edge.img2iuv.roi_theta
    ours = roi(centres, onehot)
    hidden = roi.hidden(centres, onehot)
    assert not hidden[0, 5] and hidden[0, 4]
    ref = _official_theta(centres, onehot, roi.learned_ratio, roi.learned_offset)
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=1e-6)
    box = (centres[0].max(0).values - centres[0].min(0).values).max() / 2
    torch.testing.assert_close(ours[0, 4, 0, 0], 0.8 * box)


def test_partdrop_uses_one_drop_set_for_global_and_partial_maps(edge):
    keep, keep_partial = edge.part_drop.keep_masks(64, torch.device("cpu"))
    assert (keep[:, 0] == 1).all() and (keep_partial[..., 0] == 1).all()
    table = torch.from_numpy(tables.partial_part_table())
    assert torch.equal(keep_partial, keep[:, table])
    rate = 1.0 - keep[:, 1:].mean().item()
    assert 0.2 < rate < 0.4  # gamma = 0.3 (64 x 24 draws)
    # "maps" mode: a dropped part vanishes from the stage-2 input in both streams.
    model = build_danet("edge", partdrop_rate=0.999).train()
    out = model(image(1))
    assert out["partdrop_keep"][0, 1:].sum() == 0


def test_config_roundtrip_rebuilds_the_same_model(edge):
    data = json.loads(json.dumps(edge.config.to_dict()))
    clone = build_from_config(data, body=tiny_body_layer()).eval()
    state = edge.state_dict()
    assert not any(k.startswith("body.layer.") for k in state)  # body arrays stay out
    clone.load_state_dict(state, strict=True)
    x = image(1)
    with torch.no_grad():
        a, b = edge(x), clone(x)
    assert all(torch.equal(a[k], b[k]) for k in OUTPUT_NAMES)
    assert clone.config == edge.config


def test_registry_errors_name_the_fix():
    with pytest.raises(InputError, match=r"known models: .*danet"):
        build("nope")
    with pytest.raises(InputError, match="no variant 'tiny'"):
        make_config("danet", "tiny")
    with pytest.raises(InputError, match="unknown DaNetConfig field"):
        make_config("danet", "edge", roi_sise=20)
    with pytest.raises(InputError, match="rot_repr"):
        make_config("danet", "edge", rot_repr="quat")
    assert make_config("danet", "edge", roi_size=20, mean_cam=[1, 0, 0]).mean_cam == (1, 0, 0)


def test_edge_budget_params_and_flops(edge):
    from hmrt.train.models.flops import count_flops

    counts = edge.parameter_counts()
    flops = count_flops(edge)
    assert counts["inference"] < 5_000_000
    assert 0.2e9 < flops.total < 0.6e9
    assert set(flops.per_module) == {"img2iuv", "regressor", "body"}


def test_onnx_opset17_export_runs_in_onnxruntime(edge, tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    path = tmp_path / "danet_edge.onnx"
    x = image(1)
    torch.onnx.export(
        edge,
        (x,),
        str(path),
        input_names=["image"],
        output_names=list(OUTPUT_NAMES),
        # Every output needs its batch axis declared dynamic: an output tensor that also feeds
        # later ops (rotmats -> LBS) would otherwise be typed batch 1 and ORT folds that in.
        dynamic_axes={name: {0: "batch"} for name in ("image", *OUTPUT_NAMES)},
        opset_version=17,
        dynamo=False,
    )
    model = onnx.load(str(path))
    assert model.opset_import[0].version == 17
    ops = {n.op_type for n in model.graph.node}
    assert not ops & {"AffineGrid", "NonZero", "ScatterND", "ScatterElements", "Loop", "If"}
    for node in model.graph.node:
        if node.op_type == "GridSample":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            assert attrs["mode"] == b"bilinear" and attrs["align_corners"] == 1
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x2 = image(2, seed=3)
    got = dict(zip(OUTPUT_NAMES, session.run(None, {"image": x2.numpy()})))
    with torch.no_grad():
        ref = edge(x2)
    for key in OUTPUT_NAMES:
        np.testing.assert_allclose(got[key], ref[key].numpy(), atol=1e-3, rtol=1e-3, err_msg=key)
