"""HEMlets training end to end: its criterion on real synthetic samples through the edge model
(targets at the model's map size, gradients into the pose network and PoSh, the pose-only
phase), and ``hmrt train --model hemlets`` -> ``hmrt eval`` with the pose network's metric.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hmrt.train.losses import HemletsCriterion, build_criterion
from hmrt.train.losses.hemlets import HEMLETS_WEIGHTS

CONFIG = Path(__file__).resolve().parents[1] / "train" / "configs" / "hemlets_edge_cpu.yaml"


@pytest.fixture(scope="module")
def setup():
    """HEMlets edge (train mode), its criterion and 4 augmented synthetic samples (1 flipped)."""
    from torch.utils.data import default_collate

    from hmrt.train.data.dataset import SyntheticDataset
    from hmrt.train.models import build
    from hmrt.train.sources import augment_config

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build("hemlets", "edge").train()
    crit = build_criterion(model)
    ds = SyntheticDataset(seed=0, length=8, augment=augment_config(model), aug_seed=0)
    batch = default_collate([ds[i] for i in range(4)])
    yield model, crit, batch
    torch.set_num_threads(old)


def test_targets_match_the_model_maps(setup):
    model, crit, batch = setup
    assert isinstance(crit, HemletsCriterion) and crit.depth_range_m == model.config.depth_range_m
    pred = model(batch["image"])
    t = crit.targets(pred, batch, {})
    assert t.hemlets.shape == pred["hemlets"].shape and t.heatmaps.shape == pred["heatmaps2d"].shape
    assert t.joints_vol.shape == pred["joints_vol"].shape
    assert batch["flip"].sum() > 0  # a flipped sample goes through the targets too
    # Every synthetic sample has 3D labels: z supervised, every part with both joints in the
    # crop keeps its HEMlets.
    assert t.joints_vol_mask[..., 2].sum() == t.joints_vol_mask[..., 2].numel()
    assert 0 < float(t.hemlet_mask.mean()) <= 1.0


def test_every_term_finite_and_gradients_reach_pose_network_and_posh(setup):
    model, crit, batch = setup
    model.zero_grad(set_to_none=True)
    loss, terms = crit(model(batch["image"]), batch)
    assert set(terms) == set(HEMLETS_WEIGHTS) and not crit.skipped
    assert all(torch.isfinite(v) for v in terms.values()) and torch.isfinite(loss)
    loss.backward()
    for prefix in (
        "backbone.",
        "conv_feature.",
        "conv_FBI.",
        "FBI_encoder.",
        "conv_tail.",
        "posh.",
    ):
        params = [p for n, p in model.named_parameters() if n.startswith(prefix)]
        dead = [p for p in params if p.grad is None or not p.grad.abs().sum() > 0]
        assert params and not dead, f"{len(dead)} {prefix} parameters without gradient"
    # The pose-only phase: no gradient into PoSh.
    model.zero_grad(set_to_none=True)
    loss, terms = crit(model(batch["image"]), batch, pretrain=True)
    assert set(terms) == {"hem", "heatmap2d", "joints_vol"}
    loss.backward()
    assert all(p.grad is None or not p.grad.any() for p in model.posh.parameters())


def test_predictor_returns_the_pose_joints_without_changing_the_outputs(setup):
    """``hmrt eval`` reads ``joints_vol`` with a hook; the eval outputs are the contract's."""
    import numpy as np

    from hmrt.train.evaluate import torch_predictor

    model, _, batch = setup
    predict = torch_predictor(model)
    out = predict(batch["image"][:2].numpy())
    assert out["joints_vol"].shape == (2, 18, 3) and predict.pose_joints.eval_joints == 17
    model.eval()
    with torch.no_grad():
        ref = model(batch["image"][:2])
    model.train()
    assert set(out) == {*ref, "joints_vol"}
    assert np.allclose(out["joints3d"], ref["joints3d"].numpy())
    assert not model.volume_reg._forward_hooks  # the hook is removed after each call


def _hmrt(*args: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "hmrt", *args], capture_output=True, text=True, env=env,
        timeout=600, **kw,
    )  # fmt: skip


def test_train_cli_two_steps_then_eval(tmp_path):
    """``hmrt train --model hemlets --variant edge --config`` (2 steps of 2, in-loop synth-val
    eval) logs every term and the pose network's error; ``hmrt eval`` scores the checkpoint."""
    run = tmp_path / "run"
    proc = _hmrt(
        "train", "--model", "hemlets", "--variant", "edge", "--config", str(CONFIG),
        "--synth-epoch", "4", "--val-samples", "2", "--steps", "2", "--batch-size", "2",
        "--workers", "0", "--threads", "1", "--out", str(run), "--no-progress",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    header = (run / "train_log.csv").read_text().splitlines()[0].split(",")
    assert set(HEMLETS_WEIGHTS) <= set(header)
    eval_header = (run / "eval_log.csv").read_text().splitlines()[0].split(",")
    assert {"pose_mpjpe", "pose_pa_mpjpe"} <= set(eval_header)
    proc = _hmrt("eval", "--checkpoint", str(run / "best.pt"), "--samples", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert "pose-PA" in lines[1]
    assert lines[2].startswith("model") and lines[3].startswith("mean pose+shape")
    assert len(lines[2].split()) == 7  # name, N, MPJPE, PA-MPJPE, PVE, pose, pose-PA
