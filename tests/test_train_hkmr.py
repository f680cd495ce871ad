"""HKMR training end to end: its criterion on real synthetic samples through the edge model
(every term finite, the 2D term in the labels' frame, gradients into the encoder and every
regressor, none into the pose prior), and ``hmrt train --model hkmr`` -> ``hmrt eval``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from hmrt.cli import main as hmrt_main
from hmrt.train.losses import HkmrCriterion, build_criterion
from hmrt.train.losses.hkmr import HKMR_WEIGHTS
from hmrt.train.prior import PosePriorConfig, PosePriorEncoder, save_pose_prior

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "train" / "configs" / "hkmr_edge_cpu_danet.yaml"  # the default weights' recipe


def _prior_file(folder: Path) -> Path:
    """A small untrained prior (the loss only needs a frozen encoder to run)."""
    torch.manual_seed(0)
    return save_pose_prior(folder / "pose_prior.pt", PosePriorEncoder(PosePriorConfig(hidden=32)))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """HKMR edge (train mode), its criterion with every term on, 4 augmented synthetic
    samples (1 flipped)."""
    from torch.utils.data import default_collate

    from hmrt.train.data.dataset import SyntheticDataset
    from hmrt.train.models import build
    from hmrt.train.sources import augment_config

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build("hkmr", "edge").train()
    prior = _prior_file(tmp_path_factory.mktemp("prior"))
    weights = {"vertices": 2.0, "cam_scale": 1.0}
    crit = build_criterion(model, {"prior": str(prior), "weights": weights})
    ds = SyntheticDataset(seed=0, length=8, augment=augment_config(model), aug_seed=0)
    batch = default_collate([ds[i] for i in range(4)])
    yield model, crit, batch
    torch.set_num_threads(old)


def test_every_term_finite_and_gradients_reach_encoder_and_regressors(setup):
    model, crit, batch = setup
    assert isinstance(crit, HkmrCriterion) and crit.body is model.body.layer
    model.zero_grad(set_to_none=True)
    pred = model(batch["image"])
    loss, terms = crit(pred, batch)
    assert set(terms) == set(HKMR_WEIGHTS) and not crit.skipped
    assert all(torch.isfinite(v) for v in terms.values()) and torch.isfinite(loss)
    assert all(float(terms[k]) > 0 for k in ("pose", "betas", "joints3d", "joints2d", "kl"))
    loss.backward()
    for prefix in ("backbone.", "regressor."):
        params = [p for n, p in model.named_parameters() if n.startswith(prefix)]
        dead = [n for n, p in model.named_parameters() if n.startswith(prefix) and
                (p.grad is None or not p.grad.abs().sum() > 0)]  # fmt: skip
        assert params and not dead, f"{len(dead)} {prefix} parameters without gradient: {dead[:5]}"
    assert all(p.grad is None for p in crit.prior.parameters())


def test_2d_term_is_the_projection_in_the_labels_frame(setup):
    """``joints2d_steps`` (crop pixels) normalised by the loss equal the weak-perspective
    projection of ``joints3d_steps`` with ``cam_steps`` (the labels' [-1, 1] frame)."""
    from hmrt.train.losses.keypoints import weak_perspective
    from hmrt.train.losses.reduce import sample_sum_mean

    model, crit, batch = setup
    with torch.no_grad():
        pred = model(batch["image"])
        _, terms = crit(pred, batch)
    n, t = pred["cam_steps"].shape[:2]
    proj = weak_perspective(pred["joints3d_steps"].flatten(0, 1), pred["cam_steps"].flatten(0, 1))
    err = (proj.unflatten(0, (n, t)) - batch["joints2d"][:, None]).abs()
    want = sample_sum_mean(err, batch["joints2d_vis"][:, None, :, None])
    assert float(terms["joints2d"]) == pytest.approx(float(want), rel=1e-4)


def test_train_cli_two_steps_then_eval(tmp_path, capsys):
    """``hmrt train --model hkmr --variant edge --config`` (the default weights' recipe, 2 steps
    of 2, in-loop synth-val eval; the config's prior replaced by a test one) starts the encoder
    from DaNet-edge's and logs every term; ``hmrt eval`` scores the checkpoint."""
    config = yaml.safe_load(CONFIG.read_text())
    config["loss"]["prior"] = str(_prior_file(tmp_path))
    ((prefix, source),) = config["init_modules"].items()
    config["init_modules"] = {prefix: str(REPO / source)}  # the recipe runs from the repo root
    cfg_path = tmp_path / "hkmr.yaml"
    cfg_path.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    old = torch.get_num_threads()
    try:
        code = hmrt_main([
            "train", "--model", "hkmr", "--variant", "edge", "--config", str(cfg_path),
            "--synth-epoch", "4", "--val-samples", "2", "--steps", "2", "--batch-size", "2",
            "--workers", "0", "--threads", "1", "--out", str(run), "--no-progress",
        ])  # fmt: skip
        assert code == 0, capsys.readouterr().err[-3000:]
        header = (run / "train_log.csv").read_text().splitlines()[0].split(",")
        assert set(HKMR_WEIGHTS) <= set(header)
        capsys.readouterr()
        code = hmrt_main(["eval", "--checkpoint", str(run / "best.pt"), "--samples", "2"])
        out = capsys.readouterr()
        assert code == 0, out.err[-3000:]
        lines = out.out.strip().splitlines()
        assert any(line.startswith("model") for line in lines)
    finally:
        torch.set_num_threads(old)
