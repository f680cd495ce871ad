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
    hmrt_terms = {"vertices", "map_l_parts", "mesh_joints3d", "mesh_joints2d"}
    assert all(w == 1.0 for k, w in cfg.loss.weights.items() if k not in hmrt_terms)  # paper's
    assert all(cfg.loss.weights[k] == 0.0 for k in hmrt_terms)
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
    rows = {line.split("  ")[0] for line in proc.stdout.splitlines()}
    assert {"model", "IK fit (rotmats, betas)"} <= rows, proc.stdout  # GIK-Net's body: a row
    onnx_path = tmp_path / "bobw.onnx"
    proc = _hmrt("export", "--checkpoint", str(run / "uvi" / "best.pt"), "--out", str(onnx_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    model = onnx.load(str(onnx_path), load_external_data=False)
    assert [o.name for o in model.graph.output][-1] == "pose_joints"


def test_decomr_warm_start_reproduces_decomr_at_step_zero():
    """The DecoMR recipe's warm start: BoBW (uvi_residual off) with DecoMR-edge's CNet and LNet
    gives DecoMR-edge's mesh (the 18 extra UVI inputs start at zero weight), and refuses the
    residual UVI, whose output is a correction rather than an absolute map."""
    import torch

    from hmrt.train.checkpoint import load_module_weights_into, load_weights_into
    from hmrt.train.models.registry import build

    weights = Path(__file__).resolve().parents[1] / "assets" / "weights" / "decomr_edge.pt"
    decomr = build("decomr", "edge")
    load_weights_into(decomr, str(weights))
    bobw = build("bobw", "edge", uvi_residual=False)
    assert load_module_weights_into(bobw, "dmp", f"{weights}:cnet") > 0
    assert load_module_weights_into(bobw, "uvi", f"{weights}:lnet") > 0
    decomr.eval()
    bobw.eval()
    image = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want, got = decomr(image), bobw(image)
    assert torch.allclose(got["vertices"], want["vertices"], atol=1e-5)
    assert torch.allclose(got["cam"], want["cam"], atol=1e-6)
    with pytest.raises(InputError, match="uvi_residual: false"):
        load_module_weights_into(build("bobw", "edge"), "uvi", f"{weights}:lnet")


def test_the_decomr_recipe_sets_each_stage():
    from hmrt.train.bobw.stages import _stage_config
    from hmrt.train.config import TrainConfig, load_yaml

    path = Path(__file__).resolve().parents[1] / "train" / "configs" / "bobw_edge_cpu_decomr.yaml"
    cfg = TrainConfig.from_dict(load_yaml(path))
    dmp, uvi = _stage_config(cfg, "dmp"), _stage_config(cfg, "uvi")
    assert dmp.optim.lr == cfg.stage_lr["dmp"] and uvi.optim.lr == cfg.optim.lr
    assert _stage_config(cfg, "dmp", lr_from_flag=True).optim.lr == cfg.optim.lr
    assert {"dmp", "ik"} <= set(uvi.freeze) and "dmp.body" in dmp.freeze
    with pytest.raises(InputError, match="unknown stage"):
        TrainConfig(model="bobw", stage_lr={"warmup": 1e-3})
