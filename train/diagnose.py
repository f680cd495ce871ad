"""Where a DaNet checkpoint's 3D error comes from: stage-1 quality and a pose/shape split.

``hmrt diagnose --checkpoint CKPT [--data synth-val] [--samples 256] [--json PATH]`` (or
``python -m hmrt.train.diagnose``) prints

* stage 1 (the IUV estimator) against the dataset's dense labels: part accuracy and recall on
  the person's pixels, background accuracy, U/V error where the part is right, and the pixel
  error of the soft-argmax joints that centre the RoIs (in input-crop pixels; all joints and
  the extremities), and how often those joints fit better with left and right swapped (a
  person seen from behind taken for one seen from the front, or the reverse);
* stage 2 and the body: PA-MPJPE of the prediction, with the ground-truth betas swapped in
  (pose error alone) and with the ground-truth pose swapped in (shape error alone), plus the
  mean rotation error per joint group;
* what a better stage 1 would buy: PA-MPJPE when the RoIs are centred on the ground-truth
  joints, and when stage 2 reads part/U/V maps built from the labels in the model's own RoIs
  (:func:`stage2_on_gt_iuv`; once with the unsupervised background-channel U/V that the
  cleaned maps pass on, once without). Stage 2 never saw such clean maps in training, so these
  are estimates of the headroom, not bounds.

It answers "which stage should training spend its steps on" (docs/TRAINING.md, "Where the
error comes from"), which the end-to-end metrics of ``hmrt eval`` cannot.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from hmrt.runtime import metrics as M
from hmrt.train.data.poses import FLIP_JOINT
from hmrt.train.losses.iuv import partial_iuv_targets

# SMPL joint groups for the rotation-error summary (rows of the 24 local rotations).
JOINT_GROUPS: dict[str, tuple[int, ...]] = {
    "global orientation": (0,),
    "spine, neck, head": (3, 6, 9, 12, 15),
    "hips, knees": (1, 2, 4, 5),
    "ankles, feet": (7, 8, 10, 11),
    "collars, shoulders": (13, 14, 16, 17),
    "elbows": (18, 19),
    "wrists, hands": (20, 21, 22, 23),
}


END_JOINTS: tuple[int, ...] = (7, 8, 10, 11, 20, 21, 22, 23)
"""Ankles, feet, wrists and hands: the joints stage 1 finds worst."""


def _angle_deg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Geodesic angle between rotation matrices ``(..., 3, 3)`` in degrees."""
    rel = a.transpose(-1, -2) @ b
    cos = (rel.diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0) / 2.0
    return torch.rad2deg(torch.acos(cos.clamp(-1.0, 1.0)))


class _Sums:
    def __init__(self) -> None:
        self.total: dict[str, float] = {}
        self.count: dict[str, int] = {}

    def add(self, key: str, values: torch.Tensor | np.ndarray) -> None:
        v = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
        self.total[key] = self.total.get(key, 0.0) + float(v.sum())
        self.count[key] = self.count.get(key, 0) + int(v.numel())

    def mean(self, key: str) -> float:
        return self.total[key] / max(self.count[key], 1)


def _global_iuv(model: torch.nn.Module, index: Tensor, u: Tensor, v: Tensor, size) -> Tensor:
    """Cleaned stage-2 global input ``(N, 75, h, w)`` from label maps ``(N, H, W)`` (nearest)."""
    index = F.interpolate(index[:, None].float(), size=size, mode="nearest")[:, 0].long()
    u = F.interpolate(u[:, None].float(), size=size, mode="nearest")
    v = F.interpolate(v[:, None].float(), size=size, mode="nearest")
    onehot = F.one_hot(index, model.img2iuv.clean.global_classes.shape[1])
    return model.img2iuv.clean.clean_global(u, v, onehot.permute(0, 3, 1, 2).float())


def _stage2_joints(model: torch.nn.Module, global_iuv: Tensor, partial_iuv: Tensor) -> Tensor:
    """Stage 2 + body on given cleaned maps -> ``joints3d (N, 24, 3)``."""
    k, r = partial_iuv.shape[1], model.config.roi_size
    channels = 3 * partial_iuv.shape[3]
    params = model.regressor(global_iuv, partial_iuv.reshape(-1, k, channels, r, r))
    return model.body(params["rotmats"], params["betas"], params["cam"])[1]


def _stage1_maps(model: torch.nn.Module, image: Tensor, centres: Tensor | None = None):
    """Stage 1 in eval mode -> ``(global (N,75,h,w), partial (N,24,3,7,R,R), theta)``, cleaned.

    ``centres`` (N, 24, 2) replaces the soft-argmax joints as RoI centres when given.
    """
    est = model.img2iuv
    feats = est.iuv_est(image)
    heads = est.final_pred
    u, v = heads.predict_u(feats), heads.predict_v(feats)
    onehot = est.clean.global_onehot(heads.predict_uv_index(feats))
    if centres is None:
        centres = est.soft_argmax(heads.predict_hm(feats))
    theta = est.roi_theta(centres, onehot)
    r = model.config.roi_size
    partial = heads.predict_partial_iuv(est.roi_pool(feats, theta))
    partial = partial.reshape(image.shape[0], centres.shape[1], 3, -1, r, r)
    return est.clean.clean_global(u, v, onehot), est.clean.clean_partial(partial), theta


def stage2_on_gt_centres(model: torch.nn.Module, image: Tensor, centres: Tensor) -> Tensor:
    """``joints3d`` when stage 1's RoIs sit on ``centres`` (N, 24, 2) instead of its own joints."""
    global_iuv, partial_iuv, _ = _stage1_maps(model, image, centres)
    return _stage2_joints(model, global_iuv, partial_iuv)


def stage2_on_gt_iuv(
    model: torch.nn.Module,
    image: Tensor,
    batch: Mapping[str, Tensor],
    side_channel: bool = True,
    maps: tuple[Tensor, Tensor, Tensor] | None = None,
) -> Tensor:
    """``joints3d`` when stage 2 reads part/U/V maps built from the labels, in the model's RoIs.

    Global map: the labels resized (nearest) to stage 1's feature size. Partial maps: the labels
    warped into the model's own RoIs, as the partial-IUV loss builds its targets. The cleaned
    maps pass the background channel's raw U and V on (official ``iuvmap_clean``); no loss
    supervises them, so stage 2 may use them as a free feature channel. ``side_channel`` keeps
    the model's values there (on the label's background pixels); False zeroes them (pure IUV).
    ``maps``: stage 1's own ``_stage1_maps(model, image)`` when already computed.
    """
    pred_global, pred_partial, theta = _stage1_maps(model, image) if maps is None else maps
    index, u, v = batch["iuv_index"].long(), batch["iuv_u"].float(), batch["iuv_v"].float()
    n_parts = pred_global.shape[1] // 3
    global_iuv = _global_iuv(model, index, u, v, tuple(pred_global.shape[-2:]))
    r = model.config.roi_size
    label, u_p, v_p = partial_iuv_targets(index, u, v, theta, model.part_table, (r, r))
    onehot = F.one_hot(label, pred_partial.shape[3]).permute(0, 1, 4, 2, 3).float()
    partial_iuv = torch.stack([u_p[:, :, None] * onehot, v_p[:, :, None] * onehot, onehot], dim=2)
    if side_channel:
        bg = global_iuv[:, 2 * n_parts : 2 * n_parts + 1]
        for c in (0, n_parts):  # background U and V
            global_iuv[:, c : c + 1] = pred_global[:, c : c + 1] * bg
        for c in (0, 1):
            partial_iuv[:, :, c, 0] = pred_partial[:, :, c, 0] * onehot[:, :, 0]
    return _stage2_joints(model, global_iuv, partial_iuv)


def diagnose(
    model: torch.nn.Module, dataset, batch_size: int = 32, progress: bool = False
) -> dict[str, float]:
    """The numbers described in the module docstring, averaged over ``dataset``."""
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    if not hasattr(model, "img2iuv"):
        raise ValueError("diagnose needs a DaNet checkpoint (a model with an IUV estimator)")
    model.eval()
    h, w = model.config.input_size
    half = torch.tensor([w / 2.0, h / 2.0])
    s = _Sums()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    for b in tqdm(loader, desc="diagnose", leave=False, disable=not progress, unit="batch"):
        missing = {"iuv_index", "iuv_u", "iuv_v", "rotmats", "betas", "joints2d"} - set(b)
        if missing:
            raise ValueError(f"the data has no {', '.join(sorted(missing))} labels")
        image = b["image"].float()
        with torch.no_grad():
            s1 = model.img2iuv(image)
            out = model(image)
            gi = b["iuv_index"].long()
            pi = s1["iuv_index"].argmax(1)
            fg = gi > 0
            s.add("part_accuracy", (pi[fg] == gi[fg]).float())
            s.add("foreground_recall", (pi[fg] > 0).float())
            s.add("background_accuracy", (pi[~fg] == 0).float())
            right = fg & (pi == gi)
            u = s1["iuv_u"].gather(1, gi[:, None])[:, 0]
            v = s1["iuv_v"].gather(1, gi[:, None])[:, 0]
            s.add("uv_error", ((u - b["iuv_u"]).abs() + (v - b["iuv_v"]).abs())[right] / 2)
            vis = b["joints2d_vis"] > 0
            err = ((s1["roi_centres"] - b["joints2d"][..., :2].float()) * half).norm(dim=-1)
            s.add("roi_centre_px", err[vis])
            s.add("roi_centre_px_ends", err[:, list(END_JOINTS)][vis[:, list(END_JOINTS)]])
            # front/back confusion: the centres fit better with left and right swapped
            flipped = ((s1["roi_centres"][:, FLIP_JOINT] - b["joints2d"][..., :2]) * half).norm(
                dim=-1
            )
            n_vis = vis.sum(1).clamp(min=1)
            swapped = (flipped * vis).sum(1) / n_vis < (err * vis).sum(1) / n_vis
            s.add("left_right_swapped", swapped.float())
            gj = b["joints3d"].float().numpy()
            gj = gj - gj[:, :1]
            pj = out["joints3d"].numpy()
            s.add("pa_mpjpe", M.pa_mpjpe(pj - pj[:, :1], gj))
            for key, rot, betas in (
                ("pa_mpjpe_gt_betas", out["rotmats"], b["betas"].float()),
                ("pa_mpjpe_gt_pose", b["rotmats"].float(), out["betas"]),
            ):
                _, j, _ = model.body(rot, betas, out["cam"])
                s.add(key, M.pa_mpjpe(j.numpy(), gj))
            centres = b["joints2d"][..., :2].float()
            j = stage2_on_gt_centres(model, image, centres)
            s.add("pa_mpjpe_gt_centres", M.pa_mpjpe(j.numpy(), gj))
            maps = _stage1_maps(model, image)
            for key, side in (("pa_mpjpe_gt_iuv", True), ("pa_mpjpe_gt_iuv_no_side", False)):
                j = stage2_on_gt_iuv(model, image, b, side_channel=side, maps=maps)
                s.add(key, M.pa_mpjpe(j.numpy(), gj))
            ang = _angle_deg(out["rotmats"], b["rotmats"].float())
            for name, rows in JOINT_GROUPS.items():
                s.add(f"rot:{name}", ang[:, list(rows)])
    return {k: s.mean(k) for k in s.total}


def format_report(res: Mapping[str, float], n: int, title: str) -> str:
    """The diagnosis as two small markdown tables."""
    lines = [
        f"{title} ({n} samples)",
        "",
        "| stage 1 (IUV estimator) | value |",
        "| --- | ---: |",
        f"| part accuracy on the person's pixels | {100 * res['part_accuracy']:.1f}% |",
        f"| person pixels not called background | {100 * res['foreground_recall']:.1f}% |",
        f"| background accuracy | {100 * res['background_accuracy']:.1f}% |",
        f"| U/V error where the part is right | {res['uv_error']:.3f} |",
        f"| RoI centre (soft-argmax joint) error | {res['roi_centre_px']:.1f} px |",
        f"| the same at ankles, feet, wrists, hands | {res['roi_centre_px_ends']:.1f} px |",
        "| samples whose joints fit better left/right swapped"
        f" | {100 * res['left_right_swapped']:.1f}% |",
        "",
        "| stage 2 + body | value |",
        "| --- | ---: |",
        f"| PA-MPJPE | {res['pa_mpjpe']:.1f} mm |",
        f"| PA-MPJPE with ground-truth betas (pose error) | {res['pa_mpjpe_gt_betas']:.1f} mm |",
        f"| PA-MPJPE with ground-truth pose (shape error) | {res['pa_mpjpe_gt_pose']:.1f} mm |",
        f"| PA-MPJPE with RoIs on the ground-truth joints | {res['pa_mpjpe_gt_centres']:.1f} mm |",
        f"| PA-MPJPE with ground-truth part/U/V maps in its RoIs | {res['pa_mpjpe_gt_iuv']:.1f} mm |",
        "| the same, background-channel U/V zeroed (IUV only)"
        f" | {res['pa_mpjpe_gt_iuv_no_side']:.1f} mm |",
    ]
    for name in JOINT_GROUPS:
        lines.append(f"| rotation error, {name} | {res['rot:' + name]:.1f} deg |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m hmrt.train.diagnose``: the same as ``hmrt diagnose``."""
    from hmrt.cli import main as hmrt_main

    return hmrt_main(["diagnose", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
