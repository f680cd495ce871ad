"""DaNet edge with its criterion and the real data pipeline (a tiny test body, shards on disk)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from body_helpers import write_synthetic_body

from hmrt.train.checkpoint import load_checkpoint, read_checkpoint
from hmrt.train.losses import DanetCriterion, LossConfig


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A small body model and 6 synthetic samples written as shards with it."""
    from hmrt.train.data.generate import generate_shards
    from hmrt.train.data.synth import SynthConfig

    root = tmp_path_factory.mktemp("danet")
    body = write_synthetic_body(root / "body.npz")
    shards = root / "shards"
    generate_shards(shards, 6, 3, SynthConfig(body_path=str(body)), workers=1, progress=False)
    return body, shards


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a shared, oversubscribed CPU, OpenMP barriers make 2 threads ~10x
    slower than 1 for these small convolutions."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _batch(shards: Path, model, n: int = 2) -> dict:
    from torch.utils.data import default_collate

    from hmrt.train.data.dataset import ShardDataset
    from hmrt.train.sources import augment_config

    ds = ShardDataset(shards, augment=augment_config(model, train=True), aug_seed=0)
    return default_collate([ds[i] for i in range(n)])


def test_gradient_reaches_every_parameter_group(tiny):
    from hmrt.train.models import build

    body, shards = tiny
    torch.manual_seed(0)
    model = build("danet", "edge", body=str(body)).train()
    batch = _batch(shards, model)
    assert batch["iuv_index"].shape[-1] == model.config.feat_size[0]  # rendered at 28x28
    crit = DanetCriterion.for_model(model, LossConfig())
    loss, terms = crit(model(batch["image"]), batch)
    assert not crit.skipped, f"terms without inputs: {crit.skipped}"
    assert set(terms) >= {
        "iuv_index",
        "iuv_ann",
        "part_iuv_index",
        "part_iuv_uv",
        "joints2d_roi",
        "smpl_pose",
        "vertices",
        "joints3d",
        "reproj",
        "refine_rot",
        "refine_pos",
    }
    assert all(torch.isfinite(v) for v in terms.values())
    loss.backward()
    groups: dict[str, list] = {}
    for name, p in model.named_parameters():
        groups.setdefault(".".join(name.split(".")[:3]), []).append(p)
    dead = [
        g
        for g, ps in groups.items()
        if not any(p.grad is not None and p.grad.abs().sum() > 0 for p in ps)
    ]
    assert not dead, f"parameter groups without gradient: {dead}"
    assert len(groups) >= 10


def test_pretrain_phase_trains_only_stage_one(tiny):
    from hmrt.train.models import build

    body, shards = tiny
    model = build("danet", "edge", body=str(body)).train()
    batch = _batch(shards, model)
    crit = DanetCriterion.for_model(model)
    loss, terms = crit(model(batch["image"]), batch, pretrain=True)
    assert not {"smpl_pose", "vertices", "refine_rot"} & set(terms)
    loss.backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.regressor.parameters())
    assert any(p.grad is not None for p in model.img2iuv.iuv_est.parameters())


def test_frozen_stage_one_trains_only_stage_two(tiny):
    from hmrt.train.models import build
    from hmrt.train.trainer import freeze_modules

    body, shards = tiny
    model = build("danet", "edge", body=str(body)).train()
    frozen = freeze_modules(model, ["img2iuv"])
    for m in frozen:
        m.eval()
    batch = _batch(shards, model)
    crit = DanetCriterion.for_model(model)
    pred = model(batch["image"])
    assert "iuv_ann" not in pred  # the train-only head is skipped, not a KeyError
    loss, terms = crit(pred, batch)
    assert "smpl_pose" in terms and "iuv_ann" not in terms
    loss.backward()
    assert all(p.grad is None for p in model.img2iuv.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.regressor.parameters())


def _hmrt(*args: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "hmrt", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        **kw,
    )


_ONE_STEP = ("--steps", "1", "--batch-size", "2", "--workers", "0")
"""``hmrt train`` flags for a one-step run of two samples without loader processes."""


def _danet_edge_args(body, shards) -> list[str]:
    """``hmrt train`` flags selecting DaNet-edge on the tiny body and shards."""
    return ["--model", "danet", "--variant", "edge", "--body", str(body), "--data", str(shards)]


def test_train_and_eval_cli(tiny, tmp_path):
    body, shards = tiny
    run = tmp_path / "run"
    proc = _hmrt(
        "train",
        *_danet_edge_args(body, shards),
        "--val-data",
        str(shards),
        "--val-samples",
        "2",
        *_ONE_STEP,
        "--threads",
        "2",
        "--out",
        str(run),
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "PA-MPJPE" in proc.stdout + proc.stderr
    ck = read_checkpoint(run / "last.pt")
    assert ck["model"]["name"] == "danet" and ck["model"]["config"]["variant"] == "edge"
    assert ck["body_hash"] and ck["train_config"]["body"] == str(body)
    model = load_checkpoint(run / "best.pt")  # body found from the run's config
    assert model.config.variant == "edge" and not model.training

    proc = _hmrt(
        "eval",
        "--checkpoint",
        str(run / "best.pt"),
        "--data",
        str(shards),
        "--samples",
        "2",
        "--batch-size",
        "2",
        "--json",
        str(tmp_path / "m.json"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[1].split()[:5] == ["predictor", "N", "MPJPE", "PA-MPJPE", "PVE"]
    assert lines[2].startswith("model") and lines[3].startswith("mean pose+shape")
    assert all(float(x) > 0 for x in lines[2].split()[2:5])
    assert (tmp_path / "m.json").is_file()

    # A second stage from those weights, stage 1 frozen.
    proc = _hmrt(
        "train",
        *_danet_edge_args(body, shards),
        "--val-data",
        "none",
        *_ONE_STEP,
        "--init",
        str(run / "best.pt"),
        "--freeze",
        "img2iuv",
        "--out",
        str(tmp_path / "stage2"),
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    s2 = read_checkpoint(tmp_path / "stage2" / "last.pt")
    assert s2["train_config"]["freeze"] == ["img2iuv"]
    first = read_checkpoint(run / "best.pt")["state_dict"]
    key = next(k for k in first if k.startswith("img2iuv.") and k.endswith("weight"))
    assert torch.equal(s2["state_dict"][key], first[key])

    # Errors are one line and exit code 2.
    proc = _hmrt("train", "--data", str(shards), "--out", str(run))
    assert proc.returncode == 2 and "already holds a run" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_ddp_cli_two_ranks_on_danet(tiny, tmp_path):
    body, shards = tiny
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "hmrt.train.cli_train",
        *_danet_edge_args(body, shards),
        "--val-data",
        "none",
        "--steps",
        "2",
        "--batch-size",
        "1",
        "--workers",
        "0",
        "--threads",
        "1",
        "--out",
        str(tmp_path),
        "--no-progress",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert read_checkpoint(tmp_path / "last.pt")["position"]["step"] == 2


def test_danet_resume_is_bit_exact(tiny, tmp_path):
    """PartDrop, RoI jitter and augmentation all replay after a resume (CPU)."""
    import csv

    from hmrt.train.config import TrainConfig
    from hmrt.train.models import build
    from hmrt.train.sources import train_sources
    from hmrt.train.trainer import Trainer

    body, shards = tiny
    cfg = TrainConfig.from_dict(
        dict(
            variant="edge",
            body=str(body),
            data=[str(shards)],
            steps=4,
            batch_size=2,
            workers=0,
            log_every=1,
            tensorboard=False,
            optim=dict(lr=1e-3, warmup_steps=0),
        )
    )

    def trainer(out, resume=False):
        torch.manual_seed(0)
        model = build("danet", "edge", body=str(body))
        crit = DanetCriterion.for_model(model, cfg.loss)
        return Trainer(
            cfg, out, model, crit, train_sources(cfg, model), resume=resume, progress=False
        )

    a = trainer(tmp_path / "a")
    a.fit()
    trainer(tmp_path / "b").fit(stop_at=2)
    b = trainer(tmp_path / "b", resume=True)
    b.fit()

    def losses(d):
        with open(d / "train_log.csv", newline="") as f:
            return [r["loss"] for r in csv.DictReader(f)]

    assert losses(tmp_path / "a") == losses(tmp_path / "b")
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_diagnose_stage_swaps_reproduce_the_model(tiny):
    """The swap helpers re-run the model's own pipeline: with its own inputs, its own output."""
    from hmrt.train.diagnose import _stage1_maps, _stage2_joints, stage2_on_gt_centres
    from hmrt.train.models import build

    body, _ = tiny
    torch.manual_seed(0)
    model = build("danet", "edge", body=str(body)).eval()
    image = torch.randn(2, 3, *model.config.input_size)
    with torch.no_grad():
        ref = model(image)["joints3d"]
        centres = model.img2iuv(image)["roi_centres"]
        own = _stage2_joints(model, *_stage1_maps(model, image)[:2])
        moved = stage2_on_gt_centres(model, image, centres)
        shifted = stage2_on_gt_centres(model, image, centres + 0.2)
    torch.testing.assert_close(own, ref)
    torch.testing.assert_close(moved, ref)
    assert not torch.allclose(shifted, ref)


def test_diagnose_reports_stage_one_and_pose_shape_split(tiny, tmp_path):
    from hmrt.train.data.dataset import ShardDataset
    from hmrt.train.diagnose import JOINT_GROUPS, diagnose, format_report, main
    from hmrt.train.models import build
    from hmrt.train.sources import augment_config

    body, shards = tiny
    torch.manual_seed(0)
    model = build("danet", "edge", body=str(body))
    ds = ShardDataset(shards, augment=augment_config(model, train=False))
    res = diagnose(model, ds, batch_size=4)
    for key in ("part_accuracy", "foreground_recall", "background_accuracy", "left_right_swapped"):
        assert 0.0 <= res[key] <= 1.0
    assert res["roi_centre_px"] > 0 and res["roi_centre_px_ends"] > 0 and res["pa_mpjpe"] > 0
    # ground-truth pose and betas together would be exact: each swap removes one error source
    assert res["pa_mpjpe_gt_pose"] < res["pa_mpjpe"]
    assert {f"rot:{g}" for g in JOINT_GROUPS} <= set(res)
    for key in ("pa_mpjpe_gt_centres", "pa_mpjpe_gt_iuv", "pa_mpjpe_gt_iuv_no_side"):
        assert res[key] > 0
    report = format_report(res, len(ds), "t")
    assert "PA-MPJPE with ground-truth betas" in report
    assert "RoIs on the ground-truth joints" in report and "IUV only" in report
    assert main(["--checkpoint", str(tmp_path / "missing.pt")]) == 2


def test_hmrt_diagnose_cli_writes_json_and_rejects_bad_input(tiny, tmp_path, capsys):
    import json

    from hmrt.cli import main
    from hmrt.train.checkpoint import save_checkpoint
    from hmrt.train.models import build

    body, shards = tiny
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "m.pt", build("danet", "edge", body=str(body)))
    out = tmp_path / "diag.json"
    args = ["diagnose", "--checkpoint", str(ckpt), "--body", str(body), "--data", str(shards)]
    assert main([*args, "--samples", "4", "--json", str(out), "--no-progress"]) == 0
    assert "RoIs on the ground-truth joints" in capsys.readouterr().out
    saved = json.loads(out.read_text())
    assert saved["n"] == 4 and 0 <= saved["results"]["part_accuracy"] <= 1
    bad = tmp_path / "bad.json"
    assert main([*args, "--samples", "0", "--json", str(bad)]) == 2
    assert "--samples" in capsys.readouterr().err and not bad.exists()
