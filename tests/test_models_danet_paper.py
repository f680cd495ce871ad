"""DaNet paper variant: size against the official network; heavy forward checks are slow-marked."""

from __future__ import annotations

import pytest
import torch
from model_helpers import build_danet, image, one_torch_thread, tiny_body_layer  # noqa: F401

from hmrt.train.models import OUTPUT_NAMES

OFFICIAL_INFERENCE_PARAMS = 96_914_744  # seed-danet.md §1.13 (official modules, gcn mode)
OFFICIAL_GFLOPS = 33.75 + 12.73  # IUV estimator + regressor, conv/matmul only, 2 x MAC


@pytest.fixture(scope="module")
def paper():
    return build_danet("paper").eval()


def test_paper_parameters_match_the_official_network(paper):
    counts = paper.parameter_counts()
    assert abs(counts["inference"] - OFFICIAL_INFERENCE_PARAMS) <= 0.1 * OFFICIAL_INFERENCE_PARAMS
    assert counts["inference"] == OFFICIAL_INFERENCE_PARAMS  # layer for layer, in fact
    # HRNet-W48 trunk as measured on the official PoseHighResolutionNet (without heads).
    assert sum(p.numel() for p in paper.img2iuv.iuv_est.parameters()) == 63_594_912
    assert sum(p.numel() for p in paper.regressor.limb_reslayer.parameters()) == 18_511_872


def test_paper_state_dict_uses_official_names_and_shapes(paper):
    state = paper.state_dict()
    expected = {
        "img2iuv.iuv_est.conv1.weight": (64, 3, 3, 3),
        "img2iuv.iuv_est.stage2.0.branches.0.0.conv1.weight": (48, 48, 3, 3),
        "img2iuv.iuv_est.transition1.1.0.0.weight": (96, 256, 3, 3),
        "img2iuv.final_pred.predict_u.weight": (25, 48, 3, 3),
        "img2iuv.final_pred.predict_ann_index.weight": (15, 48, 3, 3),
        "img2iuv.final_pred.predict_hm.0.0.conv1.weight": (12, 48, 1, 1),
        "img2iuv.final_pred.predict_hm.1.weight": (24, 48, 3, 3),
        "img2iuv.final_pred.predict_partial_iuv.weight": (504, 48, 3, 3),
        "img2iuv.roi_theta.learned_ratio": (24,),
        "regressor.body_net.0.weight": (64, 75, 1, 1),
        "regressor.body_net.3.conv1.weight": (64, 64, 7, 7),
        "regressor.body_net.3.fc.weight": (13, 512),
        "regressor.limb_net.0.weight": (64, 21, 1, 1),
        "regressor.limb_reslayer.layer4.0.conv1.weight": (3072, 256, 3, 3),
        "regressor.limb_reslayer.layer4.0.downsample.0.weight": (3072, 256, 1, 1),
        "regressor.refine_gcn.gc.0.weight": (128, 256),
        "regressor.refine_gcn.act.0.0.running_mean": (24,),
        "regressor.edge_importance": (1, 24, 24),
        "regressor.pose_regressors.1.1.weight": (144, 128, 1, 1),
        "regressor.coord_regressors.0.1.weight": (72, 128, 1, 1),
        "regressor.mean_cam_shape": (1, 13),
        "regressor.rotation.mean_pose": (1, 144),
    }
    for key, shape in expected.items():
        assert tuple(state[key].shape) == shape, key
    assert not any(k.startswith("regressor.limb_net.3.layer4") for k in state)


@pytest.mark.slow
def test_paper_flops_match_the_official_network(paper):
    from hmrt.train.models.flops import count_flops

    report = count_flops(paper)
    assert abs(report.gflops - OFFICIAL_GFLOPS) <= 0.1 * OFFICIAL_GFLOPS
    assert abs(report.per_module["img2iuv"] / 1e9 - 33.75) < 0.1 * 33.75
    assert abs(report.per_module["regressor"] / 1e9 - 12.73) < 0.1 * 12.73


def test_paper_eval_forward_at_batch_one(paper):
    with torch.no_grad():
        out = paper(image(1))
    assert list(out) == list(OUTPUT_NAMES)
    assert out["vertices"].shape == (1, tiny_body_layer().n_verts, 3)
    assert out["rotmats"].shape == (1, 24, 3, 3) and torch.isfinite(out["joints2d"]).all()


@pytest.mark.slow
def test_paper_train_outputs_and_gradient_reach_every_parameter():
    train = build_danet("paper").train()
    out = train(image(2))
    assert out["part_index"].shape == (2, 24, 7, 56, 56)
    assert out["iuv_index"].shape == (2, 25, 56, 56)
    loss = sum(
        t.float().mean()
        for v in out.values()
        for t in (v if isinstance(v, list) else [v])
        if t.is_floating_point()
    )
    loss.backward()
    missing = [n for n, p in train.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert missing == []


def test_official_checkpoint_keys_convert_onto_the_paper_model(paper):
    from hmrt.train.models.danet.official_keys import convert_official_state_dict

    state = paper.state_dict()
    # Official example keys and shapes (seed-danet.md §5.4) map onto tensors of that shape.
    examples = {
        "img2iuv.iuv_est.final_pred.predict_partial_iuv.weight": (504, 48, 3, 3),
        "img2iuv.iuv_est.transition1.1.0.0.weight": (96, 256, 3, 3),
        "img2iuv.learned_ratio": (24,),
        "iuv2smpl.smpl_para_Outs.body_net.3.final_layer.weight": (13, 512),
        "iuv2smpl.smpl_para_Outs.limb_reslayer.layer4.0.downsample.0.weight": (3072, 256, 1, 1),
        "iuv2smpl.smpl_para_Outs.refine_gcn.gc.0.weight": (128, 256),
        "iuv2smpl.smpl_para_Outs.p2r_gcn.act.0.0.running_var": (24,),
        "iuv2smpl.smpl_para_Outs.pose_regressors.1.1.weight": (144, 128, 1, 1),
        "iuv2smpl.smpl_para_Outs.mean_pose": (1, 144),
        "iuv2smpl.smpl_para_Outs.mean_cam_shape": (1, 13),
    }
    fake = {k: torch.zeros(shape) for k, shape in examples.items()}
    fake["iuv2smpl.smpl_para_Outs.rot2pos.0.0.weight"] = torch.zeros(512, 256, 1, 1)
    fake["iuv2smpl.smpl_para_Outs.A_mask"] = torch.zeros(1, 24, 24)
    fake["iuv2smpl.smpl.v_template"] = torch.zeros(6890, 3)
    converted = convert_official_state_dict(fake)
    assert len(converted) == len(examples)
    for key, value in converted.items():
        assert tuple(state[key].shape) == tuple(value.shape), key
