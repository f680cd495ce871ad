"""HEMlets' targets and loss on hand-made skeletons: the depth-order rule of Eq. 1 (toward the
camera -> T^+1, away -> T^-1, tilt below 30 degrees -> T^0), heatmap peaks at the joints, the
Lambda masks, flips, every term zero at its target and positive off it, gradients, the config,
and the pose-network metric of ``hmrt eval``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from train_toys import ToyBody

from hmrt.runtime.errors import InputError
from hmrt.train.losses import HemletsCriterion, HemletsLossConfig
from hmrt.train.losses import hemlets_targets as T
from hmrt.train.losses.keypoints import weak_perspective
from hmrt.train.models.hemlets.joints import (
    BODY_TO_HEMLETS,
    HEMLETS_PARTS,
    body_to_hemlets,
    flip_permutation,
    part_flip_permutation,
)
from hmrt.train.rotations import axis_angle_to_matrix

SIZE = (32, 32)


def _fan(tilts_deg: list[float], length: float = 0.4, depth: float = 3.0):
    """Joint 0 at the origin of a camera 3 m away, and one child per tilt: a bone of ``length``
    leaning ``tilt`` degrees out of the image plane (positive: toward the camera)."""
    j3 = [[0.0, 0.0, depth]]
    for i, t in enumerate(tilts_deg):
        a = math.radians(t)
        angle = 2 * math.pi * i / len(tilts_deg)  # spread the children around the parent
        r = length * math.cos(a)
        j3.append([r * math.cos(angle), r * math.sin(angle), depth - length * math.sin(a)])
    j3 = torch.tensor([j3], dtype=torch.float32)
    j2 = 4.0 * j3[..., :2] / j3[..., 2:]  # a pinhole, f = 4 in normalised crop units
    parts = [(0, i + 1) for i in range(len(tilts_deg))]
    return j2, j3, torch.eye(j3.shape[1]), parts


def test_depth_order_rule_and_triplet_slots():
    tilts = [60.0, -60.0, 20.0, -20.0, 31.0, -31.0, 29.0, 0.0]
    j2, j3, w, parts = _fan(tilts)
    t = T.make_targets(j2, j3, w, parts, SIZE, sigma=1.0)
    assert t.polarity.tolist() == [[1, -1, 0, 0, 1, -1, 0, 0]]
    uv = T.map_pixels(j2 * 0.5, SIZE)[0]  # (J, 2) map pixels of every joint
    hem = t.hemlets[0].reshape(len(tilts), 3, *SIZE)
    for k, r in enumerate(t.polarity[0].tolist()):
        child = uv[k + 1].round().long()
        parent = uv[0].round().long()
        slot = r + 1  # [T^-1, T^0, T^+1]
        assert hem[k, slot, child[1], child[0]] > 0.5, (k, r)
        assert hem[k, 1, parent[1], parent[0]] > 0.5  # the parent always sits in T^0
        for other in {0, 2} - {slot}:
            assert float(hem[k, other].abs().max()) == 0.0  # the rest of the triplet is empty
        assert float(hem[k].max()) <= 1.0  # pixel-wise max: overlapping peaks stay at 1


def test_heatmaps_peak_at_the_projected_joints():
    """Joints placed on map pixels give a peak of exactly 1 there, on the volume's grid."""
    g = torch.Generator().manual_seed(0)
    n, h, w = 2, *SIZE
    pix = torch.stack(
        [
            torch.randint(2, w - 2, (n, 24), generator=g),
            torch.randint(2, h - 2, (n, 24), generator=g),
        ],
        dim=-1,
    ).float()
    xy_vol = pix / torch.tensor([w - 1.0, h - 1.0]) - 0.5
    j2_body = xy_vol * 2.0  # hmrt's [-1, 1] crop coordinates
    ones = torch.ones(n, 24)
    j3 = torch.cat([j2_body, ones[..., None] * 3.0], dim=-1)
    wm = torch.eye(24)
    t = T.make_targets(j2_body, j3, wm, [(0, 1)], SIZE, sigma=1.5)
    flat = t.heatmaps.flatten(2)
    peak = flat.argmax(dim=-1)
    assert torch.equal(peak % w, pix[..., 0].long()) and torch.equal(peak // w, pix[..., 1].long())
    assert torch.allclose(flat.amax(dim=-1), torch.ones(n, 24))
    # joints_vol x, y are the same positions in [-0.5, 0.5]; z is root-relative / depth range.
    assert torch.allclose(t.joints_vol[..., :2], xy_vol, atol=1e-6)
    assert float(t.joints_vol[..., 2].abs().max()) == 0.0


def test_joint_map_matrix_probes_the_model_map():
    w = T.joint_map_matrix(body_to_hemlets)
    assert torch.allclose(w.double(), torch.from_numpy(BODY_TO_HEMLETS), atol=1e-7)
    with pytest.raises(ValueError, match="not linear"):
        T.joint_map_matrix(lambda x: body_to_hemlets(x) ** 2)


def _skeleton(n: int = 3, seed: int = 0):
    """Random 24-joint bodies in front of a camera: camera-frame joints and their 2D projection
    in [-1, 1] crop coordinates, all joints inside the crop."""
    g = torch.Generator().manual_seed(seed)
    j3 = torch.randn(n, 24, 3, generator=g) * 0.25
    j3[..., 2] += 4.0
    j2 = j3[..., :2] / j3[..., 2:] * 2.5
    assert float(j2.abs().max()) < 1.0
    return j2, j3


def test_lambda_masks_missing_2d_joints_and_depth():
    j2, j3 = _skeleton()
    w = torch.from_numpy(BODY_TO_HEMLETS).float()
    vis2d, vis3d = torch.ones(3, 24), torch.ones(3, 24)
    vis2d[0, 18] = 0.0  # sample 0: left elbow unlabelled in 2D
    vis3d[1, 15] = 0.0  # sample 1: head without depth (neck/nose and head top use it)
    has_3d = torch.tensor([1.0, 1.0, 0.0])  # sample 2: a 2D-only image (MPII-like)
    t = T.make_targets(j2, j3, w, HEMLETS_PARTS, SIZE, vis2d, vis3d, has_3d)
    parts = list(HEMLETS_PARTS)
    lam = t.hemlet_mask
    # Sample 0: the two parts through the left elbow (12) lose Lambda, its heatmap and x, y.
    assert [k for k in range(14) if lam[0, k] == 0] == [
        parts.index((11, 12)),
        parts.index((12, 13)),
    ]
    assert t.heatmap_mask[0, 12] == 0 and t.heatmap_mask[0].sum() == 17
    assert t.joints_vol_mask[0, 12].tolist() == [0.0, 0.0, 1.0]
    # Sample 1: thorax -> neck/nose (9) loses Lambda; 9 and 10 lose z, keep x, y.
    assert [k for k in range(14) if lam[1, k] == 0] == [parts.index((8, 9))]
    assert t.joints_vol_mask[1, 9].tolist() == [1.0, 1.0, 0.0]
    assert t.joints_vol_mask[1, 10].tolist() == [1.0, 1.0, 0.0]
    # Sample 2: no depth: no HEMlets (Lambda = 0), z off (lambda = 0 in Eq. 6), 2D kept.
    assert lam[2].sum() == 0 and t.joints_vol_mask[2, :, 2].sum() == 0
    assert t.heatmap_mask[2].sum() == 18 and t.joints_vol_mask[2, :, :2].sum() == 36
    # No root depth: no z anywhere in that sample (z is root-relative).
    vis3d[0, 0] = 0.0
    t = T.make_targets(j2, j3, w, HEMLETS_PARTS, SIZE, vis2d, vis3d, has_3d)
    assert t.joints_vol_mask[0, :, 2].sum() == 0


def test_flipped_body_gives_flipped_targets():
    """The data pipeline mirrors and left/right-permutes the body's joints; the targets then
    equal the original's mirrored maps with HEMLETS_FLIP_PAIRS applied (what the flip test of
    the model assumes)."""
    from hmrt.train.data.poses import FLIP_JOINT

    j2, j3 = _skeleton(2, seed=3)
    mirror = torch.tensor([-1.0, 1.0, 1.0])
    w = torch.from_numpy(BODY_TO_HEMLETS).float()
    t = T.make_targets(j2, j3, w, HEMLETS_PARTS, SIZE)
    tf = T.make_targets(
        (j2 * mirror[:2])[:, FLIP_JOINT], (j3 * mirror)[:, FLIP_JOINT], w, HEMLETS_PARTS, SIZE
    )
    perm = torch.from_numpy(flip_permutation())
    assert torch.allclose(tf.heatmaps, t.heatmaps[:, perm].flip(-1), atol=1e-5)
    assert torch.allclose(tf.joints_vol, (t.joints_vol * mirror)[:, perm], atol=1e-6)
    pperm = torch.from_numpy(part_flip_permutation())
    assert torch.equal(tf.polarity, t.polarity[:, pperm])
    hem = t.hemlets.reshape(2, 14, 3, *SIZE)[:, pperm].flip(-1).reshape(2, 42, *SIZE)
    assert torch.allclose(tf.hemlets, hem, atol=1e-5)


# -- the criterion -------------------------------------------------------------------------


def _labels(n: int = 3, seed: int = 0):
    """A labelled batch of a toy body (rotations, betas, root-relative joints, 2D projections
    through a known weak-perspective camera) and the criterion for it."""
    body = ToyBody()
    g = torch.Generator().manual_seed(seed)
    rot = axis_angle_to_matrix(torch.randn(n, 24, 3, generator=g) * 0.4)
    betas = torch.randn(n, 10, generator=g)
    verts, joints = body(rot, betas)
    root = joints[:, :1]
    cam = torch.tensor([[1.2, 0.05, -0.02]]).repeat(n, 1)
    j3 = joints - root
    j2 = weak_perspective(j3, cam)
    batch = {
        "joints2d": j2,
        "joints2d_vis": (j2.abs() < 1).all(-1).float(),
        "joints3d": j3,
        "joints3d_vis": torch.ones(n, 24),
        "rotmats": rot,
        "betas": betas,
        "has_smpl": torch.ones(n),
        "has_3d": torch.ones(n),
    }
    crit = HemletsCriterion(
        None, torch.from_numpy(BODY_TO_HEMLETS).float(), torch.tensor(HEMLETS_PARTS), body=body
    )
    gt = {"vertices": verts - root, "joints3d": j3, "cam": cam}
    return crit, batch, gt


def _perfect(crit, batch, gt) -> dict:
    t = T.make_targets(
        batch["joints2d"], batch["joints3d"], crit.joint_map, crit.parts, SIZE,
        batch["joints2d_vis"], batch["joints3d_vis"], batch["has_3d"],
        sigma=crit.config.heatmap_sigma,
    )  # fmt: skip
    return {
        "hemlets": t.hemlets.clone(),
        "heatmaps2d": t.heatmaps.clone(),
        "joints_vol": t.joints_vol.clone(),
        "rotmats_raw": batch["rotmats"].clone(),
        "rotmats": batch["rotmats"].clone(),
        "betas": batch["betas"].clone(),
        **{k: v.clone() for k, v in gt.items()},
    }


PAPER_TERMS = ("hem", "heatmap2d", "joints_vol", "rotmats", "betas")
MESH_TERMS = ("vertices", "joints3d", "reproj")


def test_every_term_zero_at_the_target_and_positive_off_it():
    crit, batch, gt = _labels()
    pred = _perfect(crit, batch, gt)
    _, terms = crit(pred, batch)
    assert set(terms) == {*PAPER_TERMS, *MESH_TERMS, "cam_scale"} and not crit.skipped
    for name in (*PAPER_TERMS, *MESH_TERMS):
        assert float(terms[name]) < 1e-5, name
    g = torch.Generator().manual_seed(1)
    for name, key in [
        ("hem", "hemlets"), ("heatmap2d", "heatmaps2d"), ("joints_vol", "joints_vol"),
        ("rotmats", "rotmats_raw"), ("betas", "betas"), ("vertices", "vertices"),
        ("joints3d", "joints3d"), ("reproj", "cam"),
    ]:  # fmt: skip
        off = dict(pred)
        off[key] = pred[key] + 0.05 * torch.randn(pred[key].shape, generator=g)
        value = crit.terms[name](off, batch, {})
        assert float(value) > 1e-4, name


def test_rotmat_term_reads_raw_or_projected_matrices():
    crit, batch, gt = _labels()
    pred = _perfect(crit, batch, gt)
    pred["rotmats_raw"] = pred["rotmats_raw"] * 1.1  # off SO(3); the projected ones are exact
    assert float(crit.terms["rotmats"](pred, batch, {})) > 0.1
    crit.config = HemletsLossConfig(rotmat_source="projected")
    assert float(crit.terms["rotmats"](pred, batch, {})) < 1e-6


def test_reductions_sum_per_sample_and_skip_unlabelled_samples():
    crit, batch, gt = _labels(n=2)
    batch["joints2d_vis"] = torch.ones(2, 24)  # every joint labelled (maps cover any position)
    pred = _perfect(crit, batch, gt)
    pred["betas"] = pred["betas"] + 0.1  # L_beta = sum of 10 L1 terms = 1.0 per sample
    assert float(crit.terms["betas"](pred, batch, {})) == pytest.approx(1.0, rel=1e-5)
    pred["joints_vol"] = pred["joints_vol"] + 0.01  # 18 joints x 3 coordinates x 0.01
    assert float(crit.terms["joints_vol"](pred, batch, {})) == pytest.approx(0.54, rel=1e-4)
    # A sample without SMPL labels neither counts nor dilutes: the mean over the other one.
    batch["has_smpl"] = torch.tensor([1.0, 0.0])
    pred["betas"][1] += 5.0
    assert float(crit.terms["betas"](pred, batch, {})) == pytest.approx(1.0, rel=1e-5)
    batch["has_smpl"] = torch.zeros(2)
    value = crit.terms["betas"](pred, batch, {})
    assert float(value) == 0.0


def test_alpha_weighting_and_pretrain_terms():
    crit, batch, gt = _labels()
    pred = _perfect(crit, batch, gt)
    pred["hemlets"] = pred["hemlets"] + 0.1
    total, terms = crit(pred, batch)
    w = crit.config.weights
    alpha = {"hem": 0.05, "heatmap2d": 0.05}  # Eq. 8: alpha (L_HEM + L_2D)
    expected = sum(alpha.get(k, 1.0) * w[k] * terms[k] for k in terms)
    assert float(total) == pytest.approx(float(expected), rel=1e-5)
    assert float(terms["hem"]) > 1.0  # the maps are off by 0.1 everywhere
    _, terms = crit(pred, batch, pretrain=True)
    assert set(terms) == {"hem", "heatmap2d", "joints_vol"}


def test_gradients_reach_every_predicted_map():
    crit, batch, gt = _labels()
    pred = {k: (v + 0.05).requires_grad_(True) for k, v in _perfect(crit, batch, gt).items()}
    total, _ = crit(pred, batch)
    total.backward()
    for key in (
        "hemlets",
        "heatmaps2d",
        "joints_vol",
        "rotmats_raw",
        "betas",
        "vertices",
        "joints3d",
        "cam",
    ):
        grad = pred[key].grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, key


def test_loss_config_and_train_config():
    from hmrt.train.config import TrainConfig
    from hmrt.train.losses import loss_config_class

    assert loss_config_class("hemlets") is HemletsLossConfig
    cfg = TrainConfig.from_dict({"model": "hemlets", "loss": {"weights": {"vertices": 0.0}}})
    assert isinstance(cfg.loss, HemletsLossConfig)
    assert cfg.loss.weights["vertices"] == 0.0 and cfg.loss.weights["hem"] == 1.0
    assert cfg.loss.alpha == 0.05
    assert TrainConfig.from_dict(cfg.to_dict()).loss == cfg.loss  # checkpoint round trip
    with pytest.raises(InputError, match="dp_mask"):
        HemletsLossConfig(weights={"dp_mask": 1.0})
    with pytest.raises(InputError, match="rotmat_source"):
        HemletsLossConfig(rotmat_source="svd")
    with pytest.raises(InputError, match="unknown key"):
        HemletsLossConfig.from_dict({"sigma": 2.0})


def test_pose_joints_metric_is_zero_for_the_label_joints():
    """``joints_vol`` made from the labels (x, y through the label camera, z over the depth
    range) scores 0 mm; a depth error shows in MPJPE."""
    from hmrt.train.evaluate import PoseJoints, pose_joints_metric

    _, batch, gt = _labels(n=2)
    spec = PoseJoints(BODY_TO_HEMLETS, 2.0, 17, "volume_reg")
    w = torch.from_numpy(BODY_TO_HEMLETS).float()
    t = T.make_targets(batch["joints2d"], batch["joints3d"], w, HEMLETS_PARTS, SIZE)
    cam = gt["cam"].numpy()
    mp, pa, ok = pose_joints_metric(t.joints_vol.numpy(), batch["joints3d"].numpy(), cam, spec)
    assert ok.all() and mp.max() < 1e-3 and pa.max() < 1e-3
    jv = t.joints_vol.numpy().copy()
    jv[:, 1:, 2] += 0.05  # 10 cm deeper, every joint but the root
    mp, _, _ = pose_joints_metric(jv, batch["joints3d"].numpy(), cam, spec)
    assert np.allclose(mp, 100.0 * 16 / 17, atol=1e-3)
