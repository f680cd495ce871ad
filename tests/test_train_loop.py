"""The generic training machinery on the toy model: loss goes down, exact resume, checkpoints."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
from train_toys import ToyDataset, register_toy

from hmrt.runtime.errors import InputError
from hmrt.train.checkpoint import load_checkpoint, read_checkpoint, slim_checkpoint
from hmrt.train.config import OptimConfig, TrainConfig
from hmrt.train.losses import DanetCriterion
from hmrt.train.models.registry import build
from hmrt.train.sampling import EpochSampler
from hmrt.train.schedule import lr_factor
from hmrt.train.trainer import Source, Trainer

register_toy()


def _cfg(**kw) -> TrainConfig:
    base = dict(
        model="toy",
        variant="edge",
        batch_size=8,
        workers=0,
        log_every=1,
        ckpt_every=1000,
        tensorboard=False,
        threads=1,
        optim=dict(lr=3e-3, warmup_steps=2, schedule="cosine"),
    )
    base.update(kw)
    return TrainConfig.from_dict(base)


def _trainer(cfg, out, resume=False, sources=None, val=None):
    torch.manual_seed(cfg.seed)  # model init is part of the run's determinism
    model = build(cfg.model, cfg.variant)
    crit = DanetCriterion(cfg.loss, body=model.body)
    sources = sources or [Source(ToyDataset(32), 32, fresh=True)]
    return Trainer(
        cfg, out, model, crit, sources, val_set=val, body=model.body, resume=resume, progress=False
    )


def _losses(run_dir):
    with open(run_dir / "train_log.csv", newline="") as f:
        return [(int(r["step"]), float(r["loss"])) for r in csv.DictReader(f)]


def test_few_steps_reduce_loss_on_tiny_batch(tmp_path):
    cfg = _cfg(steps=30, optim=dict(lr=3e-3, warmup_steps=0, schedule="constant"))
    tr = _trainer(cfg, tmp_path, sources=[Source(ToyDataset(8), 8, fresh=False)])
    tr.fit()
    losses = [loss for _, loss in _losses(tmp_path)]
    assert len(losses) == 30
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    assert (tmp_path / "last.pt").is_file() and (tmp_path / "config.yaml").is_file()


def test_resume_is_bit_exact(tmp_path):
    cfg = _cfg(steps=12, ckpt_every=5)
    a = _trainer(cfg, tmp_path / "a")
    a.fit()
    b = _trainer(cfg, tmp_path / "b")
    b.fit(stop_at=7)  # an interrupted job: last.pt at step 7 (mid-epoch: 4 batches/epoch)
    assert read_checkpoint(tmp_path / "b" / "last.pt")["position"]["step"] == 7
    del b
    c = _trainer(cfg, tmp_path / "b", resume=True)
    assert (c.step, c.epoch, c.batch_in_epoch) == (7, 1, 3)
    c.fit()
    assert _losses(tmp_path / "a") == _losses(tmp_path / "b")  # the log reads as one run
    sa, sb = a.model.state_dict(), c.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_run_directory_guards(tmp_path):
    cfg = _cfg(steps=2)
    with pytest.raises(InputError, match="does not exist"):
        _trainer(cfg, tmp_path, resume=True)
    _trainer(cfg, tmp_path).fit()
    with pytest.raises(InputError, match="already holds a run"):
        _trainer(cfg, tmp_path)


def test_checkpoints_rebuild_model_and_best_is_kept(tmp_path):
    cfg = _cfg(steps=8, eval_every=4)
    tr = _trainer(cfg, tmp_path, val=ToyDataset(16, seed=9))
    metrics = tr.fit()
    assert {"mpjpe", "pa_mpjpe", "pve", "baseline_pa_mpjpe"} <= set(metrics)
    best = read_checkpoint(tmp_path / "best.pt")
    assert "optimizer" not in best and best["model"]["config"]["variant"] == "edge"
    assert best["train_config"]["steps"] == 8
    model = load_checkpoint(tmp_path / "last.pt")
    x = ToyDataset(4)[0]["image"][None]
    tr.model.eval()
    with torch.no_grad():
        ref = tr.model(x)["vertices"]
        assert torch.equal(model(x)["vertices"], ref)
    slim = slim_checkpoint(tmp_path / "last.pt", tmp_path / "slim.pt", half=True)
    assert slim.stat().st_size < (tmp_path / "last.pt").stat().st_size
    half = load_checkpoint(slim)
    assert next(half.parameters()).dtype == torch.float32
    with torch.no_grad():
        assert torch.allclose(half(x)["vertices"], ref, atol=5e-3)
    with open(tmp_path / "eval_log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [4, 8]


def test_sampler_resumes_and_splits_ranks():
    s = EpochSampler([10, 6], [True, False], batch_size=2, seed=3, rank=0, world=1)
    s.set_epoch(1)
    full = list(s)
    assert len(full) == 16 and len(set(full)) == 16
    assert all(10 <= i < 20 for src, i in full if src == 0)  # fresh source: epoch 1 block
    s.set_epoch(1, start_batch=3)
    assert list(s) == full[6:]
    r0 = EpochSampler([10, 6], [True, False], 2, 3, rank=0, world=2)
    r1 = EpochSampler([10, 6], [True, False], 2, 3, rank=1, world=2)
    a, b = list(r0), list(r1)
    assert len(a) == len(b) == 8 and not set(a) & set(b)


def test_lr_schedules():
    cos = OptimConfig(warmup_steps=10, schedule="cosine", min_lr_ratio=0.1)
    assert lr_factor(0, 100, cos) == pytest.approx(0.1)
    assert lr_factor(10, 100, cos) == pytest.approx(1.0)
    assert lr_factor(99, 100, cos) == pytest.approx(0.1, abs=1e-3)
    step = OptimConfig(warmup_steps=0, schedule="step", milestones=[0.5, 30000], gamma=0.1)
    assert lr_factor(49, 100, step) == 1.0 and lr_factor(50, 100, step) == pytest.approx(0.1)
    assert not math.isnan(lr_factor(5, 1, cos))


def test_augment_overrides_and_config_yaml(tmp_path):
    from hmrt.train.config import load_yaml, merge
    from hmrt.train.sources import augment_config

    aug = augment_config(build("toy", "edge"), overrides={"rot_factor": 0.0})
    assert aug.rot_factor == 0.0 and aug.res == 8 and aug.train
    with pytest.raises(InputError, match="unknown augment key"):
        augment_config(None, overrides={"spin": 1})
    (tmp_path / "c.yaml").write_text("steps: 7\noptim: {lr: 0.01}\nloss: {weights: {orth: 0}}\n")
    cfg = TrainConfig.from_dict(merge(TrainConfig().to_dict(), load_yaml(tmp_path / "c.yaml")))
    assert cfg.steps == 7 and cfg.optim.lr == 0.01 and cfg.optim.warmup_steps == 200
    assert cfg.loss.weights["orth"] == 0.0 and cfg.loss.weights["joints3d"] == 5.0
    (tmp_path / "bad.yaml").write_text("stepz: 7\n")
    with pytest.raises(InputError, match="unknown key"):
        TrainConfig.from_dict(load_yaml(tmp_path / "bad.yaml"))


def test_freeze_keeps_module_fixed_and_in_eval_mode(tmp_path):
    cfg = _cfg(steps=6, freeze=["conv"])
    tr = _trainer(cfg, tmp_path)
    before = {k: v.clone() for k, v in tr.model.conv.state_dict().items()}
    head0 = tr.model.head[1].weight.detach().clone()
    tr.fit()
    after = tr.model.conv.state_dict()
    # weights and BatchNorm running statistics both unchanged: eval mode while training
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not torch.equal(tr.model.head[1].weight, head0)
    assert all(not p.requires_grad for p in tr.model.conv.parameters())
    with pytest.raises(InputError, match="'nope' is not a module"):
        _trainer(_cfg(steps=1, freeze=["nope"]), tmp_path / "bad")


def test_init_starts_a_new_stage_from_checkpoint_weights(tmp_path):
    from hmrt.train.checkpoint import load_weights_into

    _trainer(_cfg(steps=4), tmp_path / "a").fit()
    torch.manual_seed(123)
    model = build("toy", "edge")
    load_weights_into(model, tmp_path / "a" / "last.pt")
    ref = load_checkpoint(tmp_path / "a" / "last.pt").state_dict()
    assert all(torch.equal(model.state_dict()[k], ref[k]) for k in ref)
    other = build("toy", "paper")  # hidden=64, not the checkpoint's 32
    with pytest.raises(InputError, match=r"different model config.*hidden"):
        load_weights_into(other, tmp_path / "a" / "last.pt")
