"""Where a DaNet checkpoint's 3D error comes from: stage-1 quality and a pose/shape split.

``python -m hmrt.train.diagnose --checkpoint CKPT [--data synth-val] [--samples 256]`` prints

* stage 1 (the IUV estimator) against the dataset's dense labels: part accuracy and recall on
  the person's pixels, background accuracy, U/V error where the part is right, and the pixel
  error of the soft-argmax joints that centre the RoIs (in input-crop pixels);
* stage 2 and the body: PA-MPJPE of the prediction, with the ground-truth betas swapped in
  (pose error alone) and with the ground-truth pose swapped in (shape error alone), plus the
  mean rotation error per joint group.

It answers "which stage should training spend its steps on" (docs/TRAINING.md, "Where the
error comes from"), which the end-to-end metrics of ``hmrt eval`` cannot.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping

import numpy as np
import torch

from hmrt.runtime import metrics as M

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


def diagnose(model: torch.nn.Module, dataset, batch_size: int = 32) -> dict[str, float]:
    """The numbers described in the module docstring, averaged over ``dataset``."""
    from torch.utils.data import DataLoader

    if not hasattr(model, "img2iuv"):
        raise ValueError("diagnose needs a DaNet checkpoint (a model with an IUV estimator)")
    model.eval()
    h, w = model.config.input_size
    half = torch.tensor([w / 2.0, h / 2.0])
    s = _Sums()
    for b in DataLoader(dataset, batch_size=batch_size, shuffle=False):
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
        "",
        "| stage 2 + body | value |",
        "| --- | ---: |",
        f"| PA-MPJPE | {res['pa_mpjpe']:.1f} mm |",
        f"| PA-MPJPE with ground-truth betas (pose error) | {res['pa_mpjpe_gt_betas']:.1f} mm |",
        f"| PA-MPJPE with ground-truth pose (shape error) | {res['pa_mpjpe_gt_pose']:.1f} mm |",
    ]
    for name in JOINT_GROUPS:
        lines.append(f"| rotation error, {name} | {res['rot:' + name]:.1f} deg |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (one-line errors, exit code 2, like the hmrt CLI)."""
    from hmrt.runtime.errors import InputError
    from hmrt.train.checkpoint import load_checkpoint
    from hmrt.train.sources import eval_dataset

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True, help="DaNet checkpoint (hmrt train / weights)")
    ap.add_argument("--data", default="synth-val", help="synth-val or a shard directory")
    ap.add_argument("--samples", type=int, default=256, help="first N items (default 256)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = ap.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        model = load_checkpoint(args.checkpoint)
        if not hasattr(model, "img2iuv"):
            raise InputError(f"{args.checkpoint}: not a DaNet checkpoint; diagnose needs DaNet")
        dataset = eval_dataset(args.data, model, args.samples)
        try:
            res = diagnose(model, dataset)
        except ValueError as exc:
            raise InputError(
                f"{args.data}: {exc}; diagnose needs dense labels (synth-val or synthetic shards)"
            ) from exc
    except InputError as exc:
        print(f"hmrt diagnose: error: {exc}", file=sys.stderr)
        return 2
    print(format_report(res, len(dataset), f"{args.checkpoint} on {args.data}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
