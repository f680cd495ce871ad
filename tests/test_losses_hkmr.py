"""HKMR's loss on hand-made step outputs: every supervised term zero at its target and positive
off it, the outer steps summed, gradients into every step output, the KL through a frozen
pose-prior encoder (no gradient and no statistics update inside it), labels that are missing
skipped or masked, the axis-angle label wrap, and the config.
"""

from __future__ import annotations

import math

import pytest
import torch

from hmrt.runtime.errors import InputError
from hmrt.train.losses import HkmrCriterion, HkmrLossConfig, build_criterion, loss_config_class
from hmrt.train.losses.hkmr import HKMR_WEIGHTS, nearest_rotation_vector
from hmrt.train.prior import PosePriorConfig, PosePriorEncoder
from hmrt.train.rotations import axis_angle_to_matrix

N, T, RES = 3, 2, 64
PAPER_TERMS = ("pose", "betas", "joints3d", "joints2d")


def _prior() -> PosePriorEncoder:
    torch.manual_seed(1)
    enc = PosePriorEncoder(PosePriorConfig(hidden=16, latent=4))
    with torch.no_grad():  # non-trivial BatchNorm statistics, so eval mode matters
        enc.body[0].running_mean.uniform_(-0.2, 0.2)
        enc.body[0].running_var.uniform_(0.5, 2.0)
    return enc.eval()


def _batch(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    pose = (torch.rand(N, 24, 3, generator=g) - 0.5) * 1.2
    joints3d = torch.randn(N, 24, 3, generator=g) * 0.3
    joints3d = joints3d - joints3d[:, :1]
    return {
        "image": torch.zeros(N, 3, RES, RES),
        "rotmats": axis_angle_to_matrix(pose),
        "betas": torch.randn(N, 10, generator=g),
        "joints3d": joints3d,
        "joints3d_vis": torch.ones(N, 24),
        "joints2d": torch.rand(N, 24, 2, generator=g) * 1.6 - 0.8,
        "joints2d_vis": torch.ones(N, 24),
        "has_smpl": torch.ones(N),
        "has_3d": torch.ones(N),
    }


def _pred_at_target(batch: dict) -> dict:
    """Step outputs equal to the labels at every step (pose as the labels' axis-angle)."""
    from hmrt.train.rotations import matrix_to_axis_angle

    def steps(x: torch.Tensor) -> torch.Tensor:
        return x[:, None].repeat(1, T, *([1] * (x.dim() - 1))).clone().requires_grad_(True)

    px = (batch["joints2d"] + 1.0) * (RES / 2.0)
    return {
        "pose_aa_steps": steps(matrix_to_axis_angle(batch["rotmats"])),
        "rotmats_steps": steps(batch["rotmats"]),
        "betas_steps": steps(batch["betas"]),
        "cam_steps": steps(torch.tensor([[0.9, 0.0, 0.0]]).repeat(N, 1)),
        "joints3d_steps": steps(batch["joints3d"]),
        "joints2d_steps": steps(px),
    }


def _criterion(**weights: float) -> HkmrCriterion:
    w = {name: 0.0 for name in HKMR_WEIGHTS} | weights
    return HkmrCriterion(HkmrLossConfig(weights=w), prior=_prior())


def test_each_paper_term_is_zero_at_the_target_and_positive_off_it():
    batch = _batch()
    crit = _criterion(**{name: 1.0 for name in PAPER_TERMS})
    pred = _pred_at_target(batch)
    total, raw = crit(pred, batch)
    assert set(raw) == set(PAPER_TERMS)
    for name in PAPER_TERMS:
        assert float(raw[name]) < 1e-5, name  # float rounding of the pixel round trip
    assert float(total.detach()) < 1e-5
    offsets = {
        "pose": ("pose_aa_steps", 0.05),
        "betas": ("betas_steps", 0.1),
        "joints3d": ("joints3d_steps", 0.01),
        "joints2d": ("joints2d_steps", 1.0),
    }
    for name, (key, delta) in offsets.items():
        moved = dict(pred)
        moved[key] = pred[key].detach() + delta
        _, raw = crit(moved, batch)
        assert float(raw[name]) > 0, name
        others = [k for k in PAPER_TERMS if k != name and offsets[k][0] != key]
        assert all(float(raw[k]) < 1e-5 for k in others), name


def test_reductions_are_per_sample_sums_over_joints_coordinates_and_steps():
    batch = _batch()
    crit = _criterion(**{name: 1.0 for name in PAPER_TERMS})
    pred = _pred_at_target(batch)
    moved = dict(pred)
    moved["joints3d_steps"] = pred["joints3d_steps"].detach() + 0.01  # root-relative: only
    moved["joints3d_steps"][:, :, 0] -= 0.01  # the 23 non-root joints move, by 1 cm in x, y, z
    moved["betas_steps"] = pred["betas_steps"].detach() + 0.1
    moved["joints2d_steps"] = pred["joints2d_steps"].detach() + RES / 2.0 * 0.01  # 0.01 in [-1, 1]
    _, raw = crit(moved, batch)
    assert float(raw["joints3d"]) == pytest.approx(T * 23 * 3 * 0.01, rel=1e-4)
    assert float(raw["betas"]) == pytest.approx(T * 10 * 0.01, rel=1e-4)
    assert float(raw["joints2d"]) == pytest.approx(T * 24 * 2 * 0.01, rel=1e-3)


def test_steps_are_summed_with_equal_weights():
    batch = _batch()
    crit = _criterion(**{name: 1.0 for name in PAPER_TERMS}, kl=0.5)
    pred = _pred_at_target(batch)
    moved = {k: v.detach() + 0.03 for k, v in pred.items()}
    _, both = crit(moved, batch)
    only_first = {k: torch.cat([moved[k][:, :1], pred[k].detach()[:, 1:]], dim=1) for k in pred}
    only_second = {k: torch.cat([pred[k].detach()[:, :1], moved[k][:, 1:]], dim=1) for k in pred}
    _, first = crit(only_first, batch)
    _, second = crit(only_second, batch)
    single = {k: v[:, :1] for k, v in moved.items()}
    _, one = crit(single, batch)
    for name in PAPER_TERMS:
        sum_of_steps = float(first[name] + second[name])
        assert float(both[name]) == pytest.approx(sum_of_steps, rel=1e-5, abs=1e-5)
        assert float(first[name]) == pytest.approx(float(one[name]), rel=1e-5, abs=1e-5)
    # The KL has no target: summed over the steps too.
    kl_steps = crit.prior.kl(moved["pose_aa_steps"][:, :, 1:]).sum(dim=1).mean()
    assert float(both["kl"]) == pytest.approx(float(kl_steps), rel=1e-6)
    assert float(both["kl"]) == pytest.approx(float(one["kl"]) * T, rel=1e-5)  # equal steps


def test_total_is_the_weighted_sum_and_gradients_reach_every_step_output():
    batch = _batch()
    crit = HkmrCriterion(HkmrLossConfig(weights={"cam_scale": 1.0}), prior=_prior())
    pred = {k: (v.detach() + 0.02).requires_grad_(True) for k, v in _pred_at_target(batch).items()}
    total, raw = crit(pred, batch)
    w = crit.config.weights
    weighted = sum(w[k] * float(v) for k, v in raw.items())
    assert float(total.detach()) == pytest.approx(weighted, rel=1e-5)
    assert set(raw) == {*PAPER_TERMS, "kl", "cam_scale"}
    total.backward()
    for key in ("pose_aa_steps", "betas_steps", "joints3d_steps", "joints2d_steps", "cam_steps"):
        g = pred[key].grad
        assert g is not None and torch.isfinite(g).all(), key
        for t in range(T):
            assert g[:, t].abs().sum() > 0, (key, t)  # every outer step is supervised


def test_kl_goes_through_a_frozen_encoder_in_eval_mode():
    batch = _batch()
    prior = _prior()
    crit = HkmrCriterion(HkmrLossConfig(weights={k: 0.0 for k in PAPER_TERMS}), prior=prior)
    crit.train()  # the trainer may switch the criterion: the prior must stay in eval mode
    assert not prior.training and all(not p.requires_grad for p in prior.parameters())
    stats = prior.body[0].running_mean.clone()
    pose = (_pred_at_target(batch)["pose_aa_steps"].detach() + 0.3).requires_grad_(True)
    total, raw = crit({"pose_aa_steps": pose}, batch)
    assert set(raw) == {"kl"} and float(raw["kl"]) > 0
    total.backward()
    assert all(p.grad is None for p in prior.parameters())
    assert torch.equal(prior.body[0].running_mean, stats)
    g = pose.grad
    assert g[:, :, 1:].abs().sum() > 0  # the 23 body joints of every step get a gradient
    assert torch.equal(g[:, :, 0], torch.zeros_like(g[:, :, 0]))  # the root is not in the prior
    # Descending the KL lowers it: the gradient points towards plausible poses.
    _, after = crit({"pose_aa_steps": (pose - 0.05 * g).detach()}, batch)
    assert float(after["kl"]) < float(raw["kl"])


def test_missing_smpl_labels_mask_or_skip_their_terms():
    batch = _batch()
    crit = _criterion(**{name: 1.0 for name in PAPER_TERMS})
    pred = {k: (v.detach() + 0.05).requires_grad_(True) for k, v in _pred_at_target(batch).items()}
    # SPIN npz without pose: rotmats are identities, has_smpl 0 -> exact zero, still in the graph.
    no_smpl = dict(batch, has_smpl=torch.zeros(N), has_3d=torch.zeros(N))
    no_smpl["rotmats"] = torch.eye(3).expand(N, 24, 3, 3).clone()
    total, raw = crit(pred, no_smpl)
    assert float(raw["pose"]) == 0 and float(raw["betas"]) == 0 and float(raw["joints3d"]) == 0
    assert float(raw["joints2d"]) > 0
    total.backward()
    assert not pred["betas_steps"].grad.any()
    # One labelled sample: the mean is over the labelled samples only (not diluted).
    one = dict(batch, has_smpl=torch.tensor([1.0, 0.0, 0.0]))
    _, raw_one = crit(pred, one)
    _, raw_first = crit({k: v[:1] for k, v in pred.items()}, {k: v[:1] for k, v in batch.items()})
    assert float(raw_one["betas"]) == pytest.approx(float(raw_first["betas"]), rel=1e-6)
    # Keys absent altogether: the terms are skipped and named.
    crit.skipped.clear()
    bare = {k: batch[k] for k in ("image", "joints2d", "joints2d_vis")}
    _, raw = crit(pred, bare)
    assert set(raw) == {"joints2d"} and crit.skipped == {"pose", "betas", "joints3d"}
    # Invisible 2D joints do not count.
    hidden = dict(batch, joints2d_vis=torch.zeros(N, 24))
    _, raw = crit(pred, hidden)
    assert float(raw["joints2d"]) == 0


def test_axis_angle_label_is_the_equivalent_nearest_to_the_prediction():
    target = torch.tensor([[0.0, math.radians(179.0), 0.0], [0.0, 0.0, 0.0], [0.3, 0.0, 0.0]])
    pred = torch.tensor([[0.0, -math.radians(179.0), 0.0], [0.0, 0.0, 2 * math.pi], [0.3, 0, 0]])
    near = nearest_rotation_vector(target, pred)
    # Same rotations as the labels, each next to its prediction.
    assert torch.allclose(axis_angle_to_matrix(near), axis_angle_to_matrix(target), atol=1e-5)
    assert torch.allclose(near[0], torch.tensor([0.0, -math.radians(181.0), 0.0]), atol=1e-5)
    assert torch.allclose(near[1:], pred[1:], atol=1e-5)  # a full turn; an exact match
    # In the loss: a root at +179 deg predicted as -179 deg costs (2 deg)^2, not (358 deg)^2.
    batch = _batch()
    batch["rotmats"] = batch["rotmats"].clone()
    batch["rotmats"][:, 0] = axis_angle_to_matrix(target[:1]).expand(N, 3, 3)
    pred_steps = _pred_at_target(batch)
    pose = pred_steps["pose_aa_steps"].detach().clone()
    pose[:, :, 0] = torch.tensor([0.0, -math.radians(179.0), 0.0])
    crit = _criterion(pose=1.0)
    _, raw = crit({"pose_aa_steps": pose}, batch)
    assert float(raw["pose"]) == pytest.approx(T * math.radians(2.0) ** 2, rel=1e-3)
    # SPIN's form on rotation matrices: zero at the target too.
    spin = HkmrCriterion(HkmrLossConfig(weights={"kl": 0.0}, pose_form="rotmat"))
    _, raw = spin(pred_steps, batch)
    assert float(raw["pose"]) < 1e-10


def test_final_outputs_stand_in_for_missing_step_outputs():
    batch = _batch()
    crit = _criterion(**{name: 1.0 for name in PAPER_TERMS}, kl=1.0)
    steps = {k: v.detach() + 0.02 for k, v in _pred_at_target(batch).items()}
    final = {
        "rotmats": axis_angle_to_matrix(steps["pose_aa_steps"][:, -1]),
        "betas": steps["betas_steps"][:, -1],
        "joints3d": steps["joints3d_steps"][:, -1],
        "joints2d": steps["joints2d_steps"][:, -1],
        "cam": steps["cam_steps"][:, -1],
    }
    _, raw_final = crit(final, batch)
    _, raw_last = crit({k: v[:, -1:] for k, v in steps.items()}, batch)
    for name in (*PAPER_TERMS, "kl"):
        assert float(raw_final[name]) == pytest.approx(float(raw_last[name]), rel=1e-4), name


def test_vertices_term_uses_the_batch_mesh_and_has_smpl():
    batch = _batch()
    verts = torch.randn(N, 50, 3)
    batch["vertices"] = verts
    crit = _criterion(vertices=1.0)
    _, raw = crit({"vertices": verts.clone().requires_grad_(True)}, batch)
    assert float(raw["vertices"]) == 0
    _, raw = crit({"vertices": verts + 0.1}, batch)
    assert float(raw["vertices"]) == pytest.approx(0.1, rel=1e-4)  # DaNet's element mean


def test_config_defaults_errors_and_the_factory(tmp_path):
    cfg = HkmrLossConfig()
    assert cfg.weights == HKMR_WEIGHTS and cfg.pose_form == "axis_angle"
    assert loss_config_class("hkmr") is HkmrLossConfig
    assert HkmrLossConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(InputError, match="unknown name 'smpl_pose'"):
        HkmrLossConfig(weights={"smpl_pose": 1.0})
    with pytest.raises(InputError, match="pose_form"):
        HkmrLossConfig(pose_form="quaternion")
    with pytest.raises(InputError, match="unknown key"):
        HkmrLossConfig.from_dict({"alpha": 1.0})
    with pytest.raises(InputError, match="needs a pose prior"):
        HkmrCriterion(HkmrLossConfig())
    missing = HkmrLossConfig(prior=str(tmp_path / "nope.pt"))
    with pytest.raises(InputError, match="hmrt train-prior"):
        from hmrt.train.prior import load_pose_prior

        load_pose_prior(missing.prior_path())


def test_factory_builds_the_criterion_for_an_hkmr_model(tmp_path):
    """``build_criterion`` on anything named hkmr: the prior loaded from ``loss.prior``, frozen;
    without the KL term no prior file is needed."""
    from torch import nn

    from hmrt.train.prior import save_pose_prior

    class Named(nn.Module):
        config = type("C", (), {"name": "hkmr"})()

    path = save_pose_prior(tmp_path / "prior.pt", _prior())
    crit = build_criterion(Named(), {"prior": str(path)})
    assert isinstance(crit, HkmrCriterion) and crit.prior is not None
    assert not crit.prior.training and not any(p.requires_grad for p in crit.prior.parameters())
    crit = build_criterion(Named(), {"weights": {"kl": 0.0}, "prior": str(tmp_path / "none.pt")})
    assert crit.prior is None
    with pytest.raises(InputError, match="pose prior not found"):
        build_criterion(Named(), {"prior": str(tmp_path / "none.pt")})
