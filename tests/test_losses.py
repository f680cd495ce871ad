"""Loss terms on hand-made inputs: zero at the target, masks respected, gradients flow."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hmrt.runtime.errors import InputError
from hmrt.train.losses import DanetCriterion, LossConfig, iuv, keypoints, smpl
from hmrt.train.losses.reduce import weighted_mean
from hmrt.train.rotations import axis_angle_to_matrix

N, J = 3, 24


def _rot(seed: int, n: int = N) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return axis_angle_to_matrix(torch.randn(n, J, 3, generator=g) * 0.5)


def _iuv_labels(seed: int, n: int = N, size: int = 16):
    g = torch.Generator().manual_seed(seed)
    index = torch.randint(0, 25, (n, size, size), generator=g)
    u = torch.rand(n, size, size, generator=g) * (index > 0)
    v = torch.rand(n, size, size, generator=g) * (index > 0)
    return index, u, v


def _uv_maps(index, u, v):
    onehot = F.one_hot(index, 25).permute(0, 3, 1, 2).float()
    return onehot * u[:, None], onehot * v[:, None], onehot


def test_weighted_mean_zero_mask_is_zero_and_differentiable():
    x = torch.ones(4, 5, requires_grad=True)
    out = weighted_mean(x * 3, torch.zeros(4, 1))
    assert out.item() == 0.0
    out.backward()
    assert x.grad is not None and torch.all(x.grad == 0)


def test_iuv_losses_zero_at_target_and_mask_respected():
    index, u, v = _iuv_labels(0)
    up, vp, onehot = _uv_maps(index, u, v)
    assert iuv.uv_loss(up, vp, index, u, v).item() == 0.0
    ce = iuv.index_loss(onehot * 60.0, index)
    assert ce.item() < 1e-6
    # Background pixels carry no U,V supervision.
    up_bg = up + 5.0 * (index == 0)[:, None].float()
    assert iuv.uv_loss(up_bg, vp, index, u, v).item() == 0.0
    # Corrupt sample 1's labels: with has_iuv[1] = 0 the loss does not change.
    mask = torch.tensor([1.0, 0.0, 1.0])
    bad_index = index.clone()
    bad_index[1] = (bad_index[1] + 7) % 25
    assert iuv.index_loss(onehot * 60.0, bad_index, mask).item() < 1e-6
    bad_u = u.clone()
    bad_u[1] += 0.5
    assert iuv.uv_loss(up, vp, index, bad_u, v, mask).item() == 0.0
    assert iuv.uv_loss(up, vp, index, bad_u, v).item() > 0.0


def test_iuv_labels_resized_to_logit_resolution():
    index, u, v = _iuv_labels(1, size=16)
    small = index[:, ::2, ::2]  # nearest 2x down-sampling keeps these labels
    up, vp, onehot = _uv_maps(small, u[:, ::2, ::2], v[:, ::2, ::2])
    assert iuv.index_loss(onehot * 60.0, index).item() < 1e-6
    assert iuv.uv_loss(up, vp, index, u, v).item() == pytest.approx(0.0, abs=1e-7)


def test_partial_targets_identity_roi_selects_parts():
    index, u, v = _iuv_labels(2, size=12)
    table = torch.tensor([[7, 8, 9, 10, 1, 2]] * J)
    theta = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]).expand(N, J, 2, 3)
    label, ut, vt = iuv.partial_iuv_targets(index, u, v, theta, table, (12, 12), True)
    assert label.shape == (N, J, 12, 12)
    expect = torch.zeros_like(index)
    for ch, part in enumerate([7, 8, 9, 10, 1, 2], start=1):
        expect[index == part] = ch
    assert torch.equal(label[:, 0], expect)
    fg = expect > 0
    assert torch.allclose(ut[:, 5][fg], u[fg], atol=1e-6)
    assert torch.allclose(vt[:, 5][fg], v[fg], atol=1e-6)
    # Predictions equal to those targets give zero partial losses.
    logits = F.one_hot(label, 7).permute(0, 1, 4, 2, 3).float() * 60.0
    pu = F.one_hot(label, 7).permute(0, 1, 4, 2, 3).float() * ut[:, :, None]
    pv = F.one_hot(label, 7).permute(0, 1, 4, 2, 3).float() * vt[:, :, None]
    assert iuv.partial_index_loss(logits, label).item() < 1e-6
    assert iuv.partial_uv_loss(pu, pv, label, ut, vt).item() == pytest.approx(0.0, abs=1e-7)


def test_partial_targets_shifted_roi_moves_labels():
    index = torch.zeros(1, 8, 8, dtype=torch.long)
    index[0, 2, 2] = 1  # one torso pixel
    z = torch.zeros(1, 8, 8)
    table = torch.tensor([[7, 8, 9, 10, 1, 2]] * J)
    # A half-size RoI centred on that pixel magnifies it to the middle of the partial map.
    cx = (2 + 0.5) / 8 * 2 - 1
    theta = torch.tensor([[0.25, 0, cx], [0, 0.25, cx]]).expand(1, J, 2, 3)
    label, _, _ = iuv.partial_iuv_targets(index, z, z, theta, table, (8, 8), False)
    assert label[0, 0, 3:5, 3:5].eq(5).all() and label[0, 0, 0, 0] == 0


def test_keypoint_losses():
    g = torch.Generator().manual_seed(3)
    j3 = torch.randn(N, J, 3, generator=g)
    j3 = j3 - j3[:, :1]
    cam = torch.tensor([[0.9, 0.1, -0.2]] * N)
    j2 = keypoints.weak_perspective(j3, cam)
    vis = torch.ones(N, J)
    assert keypoints.reprojection_loss(j3, cam, j2, vis).item() == pytest.approx(0.0, abs=1e-7)
    assert keypoints.joints2d_loss(j2, j2, vis).item() == 0.0
    # Root-relative: a global offset of the prediction costs nothing.
    assert keypoints.joints3d_loss(j3 + 1.0, j3).item() == pytest.approx(0.0, abs=1e-6)
    # Invisible joints and unlabelled samples are ignored.
    bad = j2.clone()
    bad[:, 5] += 1.0
    vis0 = vis.clone()
    vis0[:, 5] = 0
    assert keypoints.joints2d_loss(bad, j2, vis0).item() == 0.0
    bad3 = j3.clone()
    bad3[2] += torch.randn(J, 3, generator=g)
    has3d = torch.tensor([1.0, 1.0, 0.0])
    assert keypoints.joints3d_loss(bad3, j3, has3d).item() == pytest.approx(0.0, abs=1e-6)
    assert keypoints.joints3d_loss(bad3, j3).item() > 0.01


def test_heatmap_peak_at_joint():
    joints = torch.tensor([[[-0.5, 0.25]]])
    hm = keypoints.gaussian_heatmaps(joints, (16, 16), sigma=1.0)
    iy, ix = divmod(int(hm[0, 0].argmax()), 16)
    # Pixel i is centred at (2 i + 1) / 16 - 1.
    assert (2 * ix + 1) / 16 - 1 == pytest.approx(-0.5, abs=1 / 16)
    assert (2 * iy + 1) / 16 - 1 == pytest.approx(0.25, abs=1 / 16)
    assert keypoints.heatmap_loss(hm, joints, norm="mse").item() == pytest.approx(0.0, abs=1e-7)


def test_smpl_losses():
    r = _rot(4)
    assert smpl.rotmat_loss(r, r).item() == 0.0
    assert smpl.orthogonality_loss(r).item() < 1e-10
    assert smpl.orthogonality_loss(r * 1.1).item() > 1e-3
    b = torch.randn(N, 10)
    assert smpl.betas_loss(b, b).item() == 0.0
    mask = torch.tensor([0.0, 1.0, 1.0])
    b2 = b.clone()
    b2[0] += 3
    assert smpl.betas_loss(b2, b, mask).item() == 0.0
    assert smpl.cam_scale_loss(torch.tensor([[5.0, 0, 0]])).item() < 1e-20
    assert smpl.cam_scale_loss(torch.tensor([[-0.1, 0, 0]])).item() > 1.0


def _toy_pred_and_batch():
    from train_toys import ToyBody

    body = ToyBody()
    rot, betas = _rot(5), torch.randn(N, 10)
    verts, joints = body(rot, betas)
    root = joints[:, :1]
    joints, verts = joints - root, verts - root
    cam = torch.tensor([[1.0, 0.0, 0.0]] * N)
    index, u, v = _iuv_labels(6, size=8)
    up, vp, onehot = _uv_maps(index, u, v)
    pred = {
        "rotmats": rot.clone().requires_grad_(),
        "betas": betas.clone(),
        "vertices": verts.clone(),
        "joints3d": joints.clone(),
        "cam": cam,
        "iuv_index": onehot * 60.0,
        "iuv_u": up,
        "iuv_v": vp,
        "roi_centres": keypoints.weak_perspective(joints, cam),
        "refine_rotmats": [rot.clone()],
        "refine_positions": [joints.clone(), joints.clone()],
    }
    batch = {
        "rotmats": rot,
        "betas": betas,
        "joints3d": joints,
        "joints2d": keypoints.weak_perspective(joints, cam),
        "joints2d_vis": torch.ones(N, J),
        "iuv_index": index,
        "iuv_u": u,
        "iuv_v": v,
        "has_smpl": torch.ones(N),
        "has_3d": torch.ones(N),
        "has_iuv": torch.ones(N),
    }
    return body, pred, batch


def test_criterion_zero_at_target_and_pretrain_phase():
    body, pred, batch = _toy_pred_and_batch()
    crit = DanetCriterion(LossConfig(), body=body)
    total, terms = crit(pred, batch)
    assert total.item() < 1e-3  # cam_scale's exp(-10)^2 and the CE floor are ~1e-9
    expected = {
        "iuv_index",
        "iuv_uv",
        "joints2d_roi",
        "smpl_pose",
        "smpl_betas",
        "orth",
        "vertices",
        "joints3d",
        "reproj",
        "cam_scale",
        "refine_rot",
        "refine_pos",
    }
    assert set(terms) == expected
    total.backward()  # the graph is intact even at zero
    _, pre_terms = crit(pred, batch, pretrain=True)
    assert set(pre_terms) == {"iuv_index", "iuv_uv", "joints2d_roi"}
    assert {"part_iuv_index", "part_iuv_uv"} <= crit.skipped  # no partial maps in this pred


def test_criterion_weights_and_masks():
    body, pred, batch = _toy_pred_and_batch()
    pred["betas"] = pred["betas"] + 1.0
    crit = DanetCriterion(LossConfig(weights={"smpl_betas": 2.0}), body=body)
    total, terms = crit(pred, batch)
    assert terms["smpl_betas"].item() == pytest.approx(1.0)
    assert total.item() == pytest.approx(2.0 + terms["vertices"].item() * 2.0, rel=1e-3, abs=1e-3)
    batch["has_smpl"] = torch.zeros(N)
    total, terms = crit(pred, batch)
    assert terms["smpl_betas"].item() == 0.0 and terms["vertices"].item() == 0.0


def test_loss_config_validation():
    cfg = LossConfig.from_dict({"weights": {"vertices": 0}, "norms": {"joints3d": "mse"}})
    assert cfg.weights["vertices"] == 0.0 and cfg.weights["joints3d"] == 5.0
    assert cfg.norms["joints3d"] == "mse"
    with pytest.raises(InputError, match="unknown loss term"):
        LossConfig(weights={"nope": 1.0})
    with pytest.raises(InputError, match="use one of"):
        LossConfig(norms={"joints3d": "l3"})


def test_heatmap_targets_decode_through_danet_soft_argmax():
    from hmrt.train.models.layers.soft_argmax import SoftArgmax2d

    joints = torch.tensor([[[-0.42, 0.3], [0.11, -0.67]]])
    hm = keypoints.gaussian_heatmaps(joints, (28, 28), sigma=1.0, pixel_offset=0.0)
    # The KL optimum: logits whose softmax(10 x) is the normalised Gaussian.
    logits = torch.log(hm.clamp(min=1e-30)) / 10.0
    kl = keypoints.heatmap_loss(logits, joints, sigma=1.0, pixel_offset=0.0, temperature=10.0)
    assert kl.item() == pytest.approx(0.0, abs=1e-5)
    decoded = SoftArgmax2d(2, 28, 28, temperature=10.0)(logits)
    assert torch.allclose(decoded, joints, atol=1e-3)
    # A flat map is far from it, and invisible joints do not count.
    flat = torch.zeros_like(hm)
    assert keypoints.heatmap_loss(flat, joints, temperature=10.0).item() > 2.0
    vis = torch.tensor([[1.0, 0.0]])
    mixed = torch.cat([logits[:, :1], flat[:, 1:]], dim=1)
    loss = keypoints.heatmap_loss(mixed, joints, vis, 1.0, "kl", 0.0, 10.0)
    assert loss.item() == pytest.approx(0.0, abs=1e-5)


def test_foreground_weight_and_target_scale():
    index, _, _ = _iuv_labels(7)
    logits = torch.zeros(N, 25, 16, 16)  # uniform prediction: CE = log 25 on every pixel
    logits[:, 0] = 5.0  # ... except that background is favoured
    plain = iuv.index_loss(logits, index)
    weighted = iuv.index_loss(logits, index, fg_weight=4.0)
    assert weighted.item() > plain.item()  # the (badly predicted) foreground counts more
    body, pred, batch = _toy_pred_and_batch()
    pred["betas"] = pred["betas"] + 1.0
    base = DanetCriterion(LossConfig(), body=body)(pred, batch)[0]
    scaled = DanetCriterion(LossConfig(target_scale=0.1), body=body)(pred, batch)[0]
    assert scaled.item() == pytest.approx(0.1 * base.item(), rel=0.02)
