"""BoBW's learned IK: shapes and sizes of the two MLPs, occlusion handling (NaN-free with every
joint hidden, hidden joints' values ignored), the IK samples (camera-frame roots drawn as the
engine labels them, root-relative targets), the axis-angle L1's 2π equivalence, a short real IK
stage that learns, and ONNX export parity.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import warnings

import numpy as np
import pytest
import torch

from hmrt.train.bobw.ik_data import (
    IKSampleSource,
    camera_frame_orientations,
    draw_pose_pool,
    posed_targets,
)
from hmrt.train.bobw.ik_fit import IKStageConfig, axis_angle_l1, run_ik_stage
from hmrt.train.models.bobw.config import BoBWConfig
from hmrt.train.models.bobw.ik import BoBWIK, JointInpaint, MartinezMLP, parameter_count

SMALL = dataclasses.replace(BoBWConfig.edge(), ik_hidden=64, gik_hidden=128)


@pytest.fixture(scope="module")
def body_setup():
    from hmrt.runtime.body.model import BodyModel
    from hmrt.train.body import BodyLayer
    from hmrt.train.models.bobw.joints import lsp14_regressor

    body = BodyModel(None)
    lsp = torch.from_numpy(lsp14_regressor(body)).float()
    root = torch.from_numpy(np.array(body.J_regressor[0:1], np.float32))
    return body, BodyLayer(body), lsp, root


def lively(ik: BoBWIK, seed: int = 0) -> BoBWIK:
    """Non-trivial statistics, output layers and BatchNorm running statistics (a fresh net's
    zero output layers would make parity trivial)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        ik.set_statistics(
            torch.randn(14, 3, generator=g) * 0.3,
            0.1 + torch.rand(14, 3, generator=g) * 0.2,
            torch.randn(72, generator=g) * 0.3,
        )
        for m in ik.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.2)
                m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
        for net in (ik.inpaint.mlp, ik.gik.mlp):
            net.out.weight.copy_(torch.randn(net.out.weight.shape, generator=g) * 0.05)
    return ik.eval()


def test_parameter_counts_follow_martinez():
    # The paper's joint net: six 256-wide linear layers (2 residual stages), seed §1.4b.
    assert parameter_count(MartinezMLP(42, 42, 256, 2, 0.5)) == 287_530
    assert parameter_count(MartinezMLP(42, 42, 256, 3, 0.5)) == 420_138
    assert parameter_count(JointInpaint(BoBWConfig.paper())) == 287_530
    vis = dataclasses.replace(BoBWConfig.paper(), ik_vis_input=True)
    assert parameter_count(JointInpaint(vis)) == 291_114
    assert parameter_count(BoBWIK(BoBWConfig.paper()).gik) == 4_336_722  # gik_hidden 1024
    assert parameter_count(BoBWIK(BoBWConfig.edge()).gik) == 1_119_826  # gik_hidden 512


def test_shapes_and_fresh_net_starts_at_the_mean_filled_input():
    ik = BoBWIK(SMALL)
    stats = {"joint_mean": torch.randn(14, 3), "joint_std": torch.full((14, 3), 0.2)}
    ik.set_statistics(**stats, pose_init=torch.arange(72.0) / 100)
    ik.eval()
    j = torch.randn(5, 14, 3)
    vis = (torch.rand(5, 14) > 0.3).float()
    out = ik(j * vis[..., None], vis)
    assert out["j_refine"].shape == (5, 14, 3)
    assert out["pose_aa"].shape == (5, 72) and out["betas"].shape == (5, 10)
    # Zero output layers: visible joints pass through, hidden ones take the mean; GIK gives
    # the initial pose and zero betas.
    want = torch.where(vis[..., None] > 0, j, stats["joint_mean"])
    assert torch.allclose(out["j_refine"], want, atol=1e-6)
    assert torch.allclose(out["pose_aa"], (torch.arange(72.0) / 100).expand(5, 72))
    assert torch.equal(out["betas"], torch.zeros(5, 10))
    assert ik.has_statistics and "inpaint.joint_std" in ik.state_dict()


@pytest.mark.parametrize("vis_input", [False, True])
def test_all_occluded_is_finite_and_hidden_values_are_ignored(vis_input):
    config = dataclasses.replace(SMALL, ik_vis_input=vis_input)
    ik = lively(BoBWIK(config))
    none = torch.zeros(4, 14)
    out = ik(torch.zeros(4, 14, 3), none)
    assert all(torch.isfinite(v).all() for v in out.values())
    garbage = ik(torch.randn(4, 14, 3) * 1e3, none)  # hidden joints' values must not matter
    assert all(torch.allclose(out[k], garbage[k]) for k in out)
    ik.train()
    j = torch.zeros(8, 14, 3, requires_grad=True)
    out = ik(j, torch.zeros(8, 14))
    sum(v.sum() for v in out.values()).backward()
    assert torch.isfinite(j.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in ik.parameters() if p.grad is not None)


def test_axis_angle_l1_is_blind_to_the_two_representations_at_pi():
    n = torch.tensor([[0.6, 0.0, 0.8]])
    assert axis_angle_l1(-math.pi * n, math.pi * n) < 1e-6
    assert axis_angle_l1(-3.0 * n, (2 * math.pi - 3.0) * n) < 1e-6  # angle > pi, same rotation
    small = torch.tensor([[0.1, -0.2, 0.3]])
    assert torch.isclose(axis_angle_l1(small * 0, small), small.abs().mean())
    assert torch.isfinite(axis_angle_l1(torch.zeros(2, 3), torch.zeros(2, 3)))


def test_root_orientations_are_drawn_as_the_engine_labels_rotmats0():
    """One draw from the engine's per-sample stream reproduces ``sample(i)['rotmats'][0]``."""
    from hmrt.train.data.synth import SyntheticGenerator

    engine = SyntheticGenerator(seed=7)
    for index in (0, 3):
        want = engine.sample(index)["rotmats"][0]
        got = camera_frame_orientations(engine.rng(index), 1)[0]
        assert np.abs(got - want).max() < 1e-6


def test_samples_are_root_relative_and_corrupted(body_setup):
    _, layer, lsp, root = body_setup
    pool = draw_pose_pool(8, seed=0)
    assert pool.pose.shape == (8, 23, 3) and pool.betas.shape == (8, 10)
    assert np.abs(pool.betas).max() <= 3.0 and np.abs(pool.betas).max() > 0
    src = IKSampleSource(pool, layer, lsp, root, noise_sigma=0.02, drop_prob=0.3, seed=1)
    b = src.batch(64)
    assert b.vertices.shape == (64, layer.n_verts, 3) and b.pose_aa.shape == (64, 72)
    assert torch.matmul(root, b.vertices).abs().max() < 1e-5  # mesh root joint at the origin
    assert torch.allclose(torch.matmul(lsp, b.vertices), b.joints, atol=1e-6)
    hidden = b.visible == 0
    assert 0.15 < hidden.float().mean() < 0.45 and torch.all(b.j_initial[hidden] == 0)
    noise = (b.j_initial - b.joints)[~hidden]
    assert 0.012 < float(noise.std()) < 0.028
    # Camera frame: +Y is down, so the head top (13) is above (smaller y than) the ankles.
    assert float((b.joints[:, 13, 1] < b.joints[:, [0, 5], 1].mean(1)).float().mean()) > 0.8
    j2, _ = posed_targets(layer, b.pose_aa, b.betas, lsp, root)
    assert torch.allclose(j2, b.joints, atol=1e-6)


def test_short_ik_stage_learns(body_setup, tmp_path):
    _, layer, lsp, root = body_setup
    torch.manual_seed(0)
    ik = BoBWIK(SMALL)
    cfg = IKStageConfig(
        steps=60, batch_size=16, pool_size=128, val_size=48, stats_samples=128, eval_every=30
    )
    result = run_ik_stage(ik, layer, lsp, cfg, tmp_path, progress=False, root_regressor=root)
    with (tmp_path / "ik_log.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [0, 30, 60]
    start = {k: float(v) for k, v in rows[0].items()}
    assert result["j_refine_mpjpe_mm"] < result["j_initial_mpjpe_mm"]
    assert result["val_loss"] < start["val_loss"]
    assert result["mesh_mpjpe_mm"] < start["mesh_mpjpe_mm"]
    assert result["pve_mm"] < start["pve_mm"]
    assert ik.has_statistics and (tmp_path / "ik.pt").is_file()
    saved = torch.load(tmp_path / "ik.pt", weights_only=False)
    assert saved["metrics"]["steps"] == 60
    fresh = BoBWIK(SMALL)
    fresh.load_state_dict(saved["ik"])
    assert fresh.has_statistics


def test_onnx_export_matches_onnxruntime():
    import onnx
    import onnxruntime as ort

    class Flat(torch.nn.Module):
        def __init__(self, ik: BoBWIK):
            super().__init__()
            self.ik = ik

        def forward(self, j_initial, visible):
            out = self.ik(j_initial, visible)
            return out["j_refine"], out["pose_aa"], out["betas"]

    flat = Flat(lively(BoBWIK(dataclasses.replace(SMALL, ik_vis_input=True)))).eval()
    g = torch.Generator().manual_seed(3)
    vis = (torch.rand(3, 14, generator=g) > 0.3).float()
    j = torch.randn(3, 14, 3, generator=g) * 0.4 * vis[..., None]
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            flat, (j, vis), buf, dynamo=False, opset_version=17,
            input_names=["j_initial", "visible"], output_names=["j_refine", "pose_aa", "betas"],
        )  # fmt: skip
    graph = onnx.load_from_string(buf.getvalue())
    ops = {n.op_type for n in graph.graph.node}
    assert "Gemm" in ops and not ops & {"NonZero", "Loop", "If", "ScatterND"}
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"j_initial": j.numpy(), "visible": vis.numpy()})
    with torch.no_grad():
        want = flat(j, vis)
    for a, b in zip(got, want):
        assert np.abs(a - b.numpy()).max() <= 1e-5 * max(1.0, float(b.abs().max()))
