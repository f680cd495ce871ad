"""The evaluation loop with plug-in predict functions (numpy in, numpy out) and its baseline."""

from __future__ import annotations

import numpy as np
import torch
from train_toys import ToyBody, ToyDataset

from hmrt.train.evaluate import BASELINE, chordal_mean_rotations, evaluate


def _gt_predictor(dataset, body, batch_size):
    """A predict function that replays the ground truth in loader order (a perfect model)."""
    state = {"i": 0}

    def predict(images: np.ndarray) -> dict[str, np.ndarray]:
        items = [dataset[state["i"] + k] for k in range(len(images))]
        state["i"] += len(images)
        rot = torch.stack([it["rotmats"] for it in items])
        betas = torch.stack([it["betas"] for it in items])
        v, j = body(rot, betas)
        return {"joints3d": (j - j[:, :1]).numpy(), "vertices": (v - j[:, :1]).numpy()}

    return predict


def test_perfect_and_constant_predictors():
    ds, body = ToyDataset(10, seed=4), ToyBody()
    rot = torch.stack([ds[i]["rotmats"] for i in range(10)])
    betas = torch.stack([ds[i]["betas"] for i in range(10)])
    mean_rot = torch.from_numpy(chordal_mean_rotations(rot.numpy())).float()[None]
    mv, mj = body(mean_rot, betas.mean(0, keepdim=True))

    def constant(images):
        n = len(images)
        return {
            "joints3d": np.repeat((mj - mj[:, :1]).numpy(), n, 0),
            "vertices": np.repeat((mv - mj[:, :1]).numpy(), n, 0),
        }

    res = evaluate(
        {"perfect": _gt_predictor(ds, body, 4), "constant": constant},
        ds,
        body=body,
        batch_size=4,
        progress=False,
    )
    perfect, const, base = res.metrics["perfect"], res.metrics["constant"], res.metrics[BASELINE]
    assert perfect["n"] == 10 and max(perfect[k] for k in ("mpjpe", "pa_mpjpe", "pve")) < 1e-3
    for k in ("mpjpe", "pa_mpjpe", "pve"):
        assert base[k] > 10 and abs(base[k] - const[k]) < 1e-3  # baseline = that constant
    table = res.table("toy")
    assert table.splitlines()[0] == "toy" and "PA-MPJPE" in table and BASELINE in table


def test_unlabelled_samples_are_skipped_and_max_samples():
    ds, body = ToyDataset(8, has_smpl_every=2), ToyBody()
    res = evaluate(
        {"p": _gt_predictor(ds, body, 4)},
        ds,
        body=body,
        batch_size=4,
        max_samples=6,
        progress=False,
    )
    m = res.metrics["p"]
    assert m["n"] == 6  # 3D joints: every sample; PVE only where has_smpl (3 of 6)
    assert res.metrics[BASELINE]["n"] == 6


def test_chordal_mean_of_equal_rotations_is_that_rotation():
    from hmrt.train.rotations import axis_angle_to_matrix

    r = axis_angle_to_matrix(torch.tensor([[0.3, -0.2, 1.0]])).numpy()
    out = chordal_mean_rotations(np.repeat(r[None], 5, 0))
    assert np.allclose(out, r, atol=1e-6)
