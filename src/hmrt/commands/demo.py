"""``hmrt demo``: the bundled DaNet-edge model on the synthetic demo clip, with accuracy.

    hmrt demo                      # writes hmrt_out/annotated.mp4, results.npz/.jsonl, metrics.json

First run only: the bundled weights (``assets/weights/danet_edge.pt``) are exported to ONNX
through ``hmrt.export`` (needs the ``export`` extra, i.e. torch) and cached; the demo clip
comes from the package (``assets/demo/``) or is generated once by ``hmrt synth --video`` and
cached. Nothing is downloaded. Later runs need only the lean runtime. ``--model`` and ``--clip``
replace either default (e.g. ``--model danet_edge.engine`` to run TensorRT). A command of the
full install (it runs the runtime, exports with hmrt.export on first use and generates the clip
with hmrt.train's data engine), so it lives in :mod:`hmrt.commands`; importing it loads neither
torch nor hmrt.export, and running it does so only while the cached ONNX is missing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from hmrt.runtime.cli_run import SMOOTH_CHOICES, add_model_arguments

DEMO_MODEL = ("danet", "edge")
ROI_MODES = {
    "every-frame": "the clip's ground-truth box on every frame (a stand-in for a person "
    "detector; --gt-boxes acquisition: track from the model's 2D joints)",
    "acquisition": "the clip's ground-truth box on the first frame and after a loss, "
    "tracked from the model's 2D joints otherwise",
    "off": "whole first frame, then tracked from the model's 2D joints (no detector)",
}
CLIP_NAME = "demo_clip.mp4"
GT_SUFFIXES = (".npz", ".gt.npz", "_gt.npz")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``hmrt demo`` options."""
    add_model_arguments(parser, model_required=False)
    parser.add_argument("--out", default="hmrt_out", metavar="DIR", help="output folder")
    parser.add_argument(
        "--clip", default=None, metavar="VIDEO", help="video instead of the demo clip"
    )
    parser.add_argument(
        "--ground-truth", default=None, metavar="NPZ",
        help="per-frame ground truth (joints3d, vertices); default: next to the clip",
    )  # fmt: skip
    parser.add_argument("--smooth", default="default", choices=SMOOTH_CHOICES)
    parser.add_argument("--max-frames", type=int, default=None, metavar="N")
    parser.add_argument("--show", action="store_true", help="also show a window")
    parser.add_argument(
        "--gt-boxes", default="auto", choices=("auto", "every-frame", "acquisition", "off"),
        help="crop around the clip's ground-truth boxes (a stand-in for a person detector): "
        "on every frame (auto when the clip has boxes; the usual HMR evaluation protocol), "
        "only to find the person (first frame, after a loss; tracked from the model's 2D "
        "joints otherwise), or off (whole first frame, then tracking)",
    )  # fmt: skip


# -- defaults: the bundled model and clip -------------------------------------------------
def default_model() -> Path:
    """The cached ONNX export of the bundled DaNet-edge weights; exported on first use."""
    from hmrt.assets import asset_path
    from hmrt.runtime.cache import cache_dir, file_sha256
    from hmrt.runtime.errors import InputError, MissingDependencyError

    name, variant = DEMO_MODEL
    weights = asset_path(f"weights/{name}_{variant}.pt")
    if not weights.is_file():
        raise InputError(
            f"the bundled {name}-{variant} weights ({weights}) are not in this install; run "
            "the demo on an exported model: hmrt demo --model MODEL.onnx"
        )
    # RoI pooling as two MatMuls: the fastest form on ONNX Runtime CPU, and it parses on every
    # TensorRT version too (docs/DEPLOY.md, "Deployment rewrites").
    out = cache_dir() / "models" / f"{name}_{variant}_matmul-{file_sha256(weights)[:12]}.onnx"
    if out.is_file():
        return out
    try:
        # The demo is a command of the full install: torch is only needed for this one export.
        from hmrt.export.model_source import load_model
        from hmrt.export.onnx_export import ExportOptions, export_model
    except ImportError as exc:
        raise MissingDependencyError(
            getattr(exc, "name", None) or "torch",
            "hmrt demo's one-time ONNX export of the bundled weights",
            'pip install torch==2.13.0 && pip install "hmrt[export]" (or pass --model MODEL.onnx)',
        ) from exc
    print(f"exporting the bundled {name}-{variant} weights to {out} (first run only)")
    src = load_model(name, variant)
    export_model(src.model, out, src.name, src.variant, ExportOptions(roi_pool="matmul"))
    return out


def default_clip() -> Path:
    """The demo clip: bundled in assets, else cached, else generated once with ``hmrt synth``."""
    from hmrt.assets import asset_path
    from hmrt.runtime.cache import cache_dir
    from hmrt.runtime.errors import InputError

    bundled = asset_path(f"demo/{CLIP_NAME}")
    if bundled.is_file():
        return bundled
    cached = cache_dir() / "demo" / CLIP_NAME
    if cached.is_file():
        return cached
    cached.parent.mkdir(parents=True, exist_ok=True)
    print(f"generating the synthetic demo clip {cached} (first run only)")
    # The data engine's CLI writes the clip and its ground truth; running it as a process
    # keeps hmrt.train (and torch) out of this one.
    cmd = [sys.executable, "-m", "hmrt", "synth", "--video", str(cached), "--frames", "120",
           "--seed", "0"]  # fmt: skip
    # Its progress bar goes straight to the terminal (stderr is inherited).
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL)
    if proc.returncode != 0 or not cached.is_file():
        raise InputError(
            f"could not generate the demo clip with `hmrt {' '.join(cmd[3:])}` (see the "
            "message above); pass your own video with --clip VIDEO [--ground-truth NPZ]"
        )
    return cached


def find_ground_truth(clip: Path) -> Path | None:
    """``clip.npz`` (or ``clip.gt.npz`` / ``clip_gt.npz``) next to the clip, if present."""
    for suffix in GT_SUFFIXES:
        p = clip.with_name(clip.stem + suffix)
        if p.is_file():
            return p
    return None


def load_ground_truth(path: Path) -> dict:
    """Per-frame ``joints3d (T, 24, 3)``, optional ``vertices (T, V, 3)`` (metres) and the
    clip's intrinsics ``K`` (the data engine's ``clip.gt.npz``; fixed for a clip)."""
    import numpy as np

    from hmrt.runtime.errors import InputError

    try:
        with np.load(path, allow_pickle=False) as data:
            keys = set(data.files)
            joints = next(
                (data[k] for k in ("joints3d", "joints", "gt_joints3d") if k in keys), None
            )
            verts = next((data[k] for k in ("vertices", "verts", "gt_vertices") if k in keys), None)
            K = data["K"] if "K" in keys else None
            boxes = data["bbox"] if "bbox" in keys else None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the ground truth ({exc})") from exc
    if joints is None or joints.ndim != 3 or joints.shape[1:] != (24, 3):
        raise InputError(f"{path}: needs a joints3d array of shape (frames, 24, 3)")
    if K is not None and K.shape[-2:] != (3, 3):
        K = None
    if boxes is not None and (boxes.ndim != 2 or boxes.shape[1] != 4):
        boxes = None
    return {
        "joints3d": joints,
        "vertices": verts,
        "K": None if K is None else K.reshape(-1, 3, 3)[0],
        "bbox": boxes,
    }


class ClipBoxes:
    """A detector that answers with the clip's ground-truth box of the frame being processed.

    The demo's stand-in for a person detector: hmrt ships none, and the bundled weights were
    trained on person-centred crops (scale +-25%), so acquiring from the whole frame works only
    when the person fills most of it, and tracking from the model's own 2D joints drifts when
    they are biased. Crops from ground-truth boxes are also how HMR accuracy is usually
    reported (3DPW, Human3.6M).
    """

    def __init__(self, boxes, rec) -> None:
        self.boxes = boxes
        self.rec = rec

    def __call__(self, frame):
        i = self.rec.frame_index
        return self.boxes[i : i + 1] if i < len(self.boxes) else self.boxes[:0]


def accuracy(results_npz: Path, gt: dict) -> dict[str, float]:
    """MPJPE / PA-MPJPE / PVE (mm) of the written results against the ground truth."""
    import numpy as np

    from hmrt.runtime.metrics import evaluate_3d

    with np.load(results_npz, allow_pickle=False) as res:
        frames = res["frame"]
        pred_j, pred_v = res["joints3d"], res["vertices"]
    keep = frames < len(gt["joints3d"])
    gt_j = gt["joints3d"][frames[keep]]
    gt_v = gt["vertices"]
    if gt_v is not None and gt_v.shape[1] == pred_v.shape[1]:
        out = evaluate_3d(pred_j[keep], gt_j, pred_v[keep], gt_v[frames[keep]])
    else:
        out = evaluate_3d(pred_j[keep], gt_j)
    out["frames"] = int(keep.sum())
    return out


def run(args: argparse.Namespace) -> int:
    """Run the demo and print FPS and accuracy; HmrtErrors become one line and exit code 2."""
    from hmrt.runtime.atomic import write_text_atomic
    from hmrt.runtime.cli_run import load_reconstructor, print_backend, print_report
    from hmrt.runtime.errors import InputError
    from hmrt.runtime.sources import open_source
    from hmrt.runtime.video_job import NPZ_NAME, process_source

    if args.model is None:  # first: a missing weights file should not wait for the clip
        args.model = str(default_model())
    clip = Path(args.clip) if args.clip else default_clip()
    gt_path = Path(args.ground_truth) if args.ground_truth else find_ground_truth(clip)
    gt = load_ground_truth(gt_path) if gt_path else None
    if args.intrinsics is None and gt is not None and gt["K"] is not None:
        args.intrinsics = gt["K"]  # the clip's true camera: full-image translations are exact
    mode = args.gt_boxes
    boxes = gt["bbox"] if gt is not None and mode != "off" else None
    if mode in ("every-frame", "acquisition") and boxes is None:
        raise InputError(
            f"--gt-boxes {mode}: no per-frame bbox in the ground truth of {clip}; "
            "use --gt-boxes off"
        )
    mode = "off" if boxes is None else "every-frame" if mode == "auto" else mode
    source = open_source(str(clip))
    try:
        rec = load_reconstructor(args, smoothing=args.smooth, fps=source.fps)
    except BaseException:
        source.close()
        raise
    out_dir = Path(args.out)
    with rec:
        print_backend(rec)
        print(f"person boxes: {ROI_MODES[mode]}")
        if boxes is not None:
            rec.tracker.detector = ClipBoxes(boxes, rec)
            rec.tracker.detect_every = 1 if mode == "every-frame" else None
        job = process_source(rec, source, save=out_dir, show=args.show, max_frames=args.max_frames)
    print_report(job.report, job.files)
    if gt is None:
        print(f"no ground truth found next to {clip}: accuracy not computed")
        return 0
    metrics = accuracy(out_dir / NPZ_NAME, gt)
    metrics.update({"fps": job.report.fps, "backend": rec.backend, "model": rec.info.name,
                    "smoothing": args.smooth, "clip": str(clip),
                    "gt_boxes": mode})  # fmt: skip
    path = write_text_atomic(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    pve = f"  PVE {metrics['pve']:.1f} mm" if "pve" in metrics else ""
    print(
        f"accuracy on {metrics['frames']} frames: MPJPE {metrics['mpjpe']:.1f} mm  "
        f"PA-MPJPE {metrics['pa_mpjpe']:.1f} mm{pve}"
    )
    print(f"end-to-end: {job.report.fps:.1f} FPS on {rec.backend}")
    print(f"wrote {path}")
    return 0
