"""``hmrt train --model bobw``: the three stages chained (tiny lengths) through the real CLI, the
stage flags' errors, then ``hmrt eval`` and ``hmrt export --checkpoint`` on the result."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hmrt.runtime.errors import InputError

TINY = """\
model: bobw
variant: edge
data: [synth]
synth_epoch: 4
val_data: synth-val
val_samples: 2
batch_size: 2
workers: 0
threads: 1
stage_steps: {dmp: 2, ik: 3, uvi: 2}
ik: {batch_size: 8, pool_size: 32, val_size: 8, stats_samples: 32, eval_every: 3}
"""


def _hmrt(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "hmrt", *args], capture_output=True, text=True, env=env, timeout=600
    )


def test_stage_config_errors():
    from hmrt.train.config import TrainConfig

    with pytest.raises(InputError, match="one stage"):
        TrainConfig(model="decomr", stage="dmp")
    with pytest.raises(InputError, match="unknown stage"):
        TrainConfig(model="bobw", stage_steps={"warmup": 3})
    cfg = TrainConfig(model="bobw", stage="uvi")
    assert cfg.loss.stage == "all"  # the stage runner sets the loss stage per stage


def test_the_cpu_recipe_loads():
    from hmrt.train.bobw.ik_fit import IKStageConfig
    from hmrt.train.config import TrainConfig, load_yaml

    path = Path(__file__).resolve().parents[1] / "train" / "configs" / "bobw_edge_cpu.yaml"
    cfg = TrainConfig.from_dict(load_yaml(path))
    assert cfg.model == "bobw" and set(cfg.stage_steps) == {"dmp", "ik", "uvi"}
    assert all(w == 1.0 for k, w in cfg.loss.weights.items() if k != "vertices")  # the paper's
    assert IKStageConfig(**cfg.ik).drop_prob == 0.3


def test_three_stages_then_eval_and_export(tmp_path):
    import onnx

    config = tmp_path / "tiny.yaml"
    # the recipe's warm start: the DMP encoder from DaNet-edge (applied by the dmp stage only)
    danet = Path(__file__).resolve().parents[1] / "assets" / "weights" / "danet_edge.pt"
    config.write_text(TINY + f'init_modules: {{dmp.body: "{danet}:img2iuv.iuv_est.body"}}\n')
    run = tmp_path / "run"
    proc = _hmrt("train", "--config", str(config), "--out", str(run), "--no-progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    for stage in ("dmp", "ik", "uvi"):
        assert (run / stage / "last.pt").is_file(), stage
    assert "J_refine" in proc.stdout  # the IK stage's own report
    dmp_header = (run / "dmp" / "train_log.csv").read_text().splitlines()[0].split(",")
    assert {"dense_l", "dense_j", "dense_d", "dp_mask"} <= set(dmp_header)
    uvi_header = (run / "uvi" / "train_log.csv").read_text().splitlines()[0].split(",")
    assert {"map_l", "joints3d", "dismag", "consistency"} <= set(uvi_header)
    # a finished stage's directory is not overwritten
    proc = _hmrt("train", "--config", str(config), "--stage", "ik", "--out", str(run / "ik"))
    assert proc.returncode == 2 and "already holds a run" in proc.stderr
    # the UVI stage from separately trained DMP and IK runs: both stay frozen, bit for bit
    proc = _hmrt(
        "train", "--config", str(config), "--stage", "uvi", "--steps", "1",
        "--init", str(run / "dmp" / "last.pt"), "--init-module", f"ik={run / 'ik' / 'last.pt'}",
        "--out", str(run / "uvi2"), "--no-progress",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "not applying init_modules dmp.body (dmp is given whole)" in proc.stdout
    import torch

    def weights(path, prefix):
        state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
        return {k: v for k, v in state.items() if k.startswith(prefix)}

    after = weights(run / "uvi2" / "last.pt", "")
    for prefix, source in (("ik.", run / "ik" / "last.pt"), ("dmp.", run / "dmp" / "last.pt")):
        want = weights(source, prefix)
        assert want and all(torch.equal(after[k], v) for k, v in want.items()), prefix
    proc = _hmrt("eval", "--checkpoint", str(run / "uvi" / "best.pt"), "--samples", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    onnx_path = tmp_path / "bobw.onnx"
    proc = _hmrt("export", "--checkpoint", str(run / "uvi" / "best.pt"), "--out", str(onnx_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    model = onnx.load(str(onnx_path), load_external_data=False)
    assert [o.name for o in model.graph.output][-1] == "pose_joints"
