"""``hmrt demo``: the bundled DaNet-edge model on the synthetic demo clip, with accuracy.

    hmrt demo                      # writes hmrt_out/annotated.mp4, results.npz/.jsonl, metrics.json

The package ships both defaults, so the demo runs on the lean install (``pip install
"hmrt[ort]"``, no torch): the bundled weights' ONNX export (``assets/weights/danet_edge.onnx``,
made by ``tools/export_bundled_onnx.py``; its metadata records the sha256 of the ``.pt`` it came
from) and the clip with its ground truth (``assets/demo/``, made by ``tools/make_demo_clip.py``).
Nothing is downloaded. Only when a packaged file is missing or stale (a checkout whose weights
changed) does the demo fall back to exporting with ``hmrt.export`` (torch) or generating the clip
with ``hmrt synth --video``, once, into ``~/.cache/hmrt``. ``--model`` and ``--clip`` replace
either default (e.g. ``--model danet_edge.engine`` to run TensorRT); ``--model decomr``,
``bobw``, ``hkmr`` or ``hemlets`` runs that model's bundled edge weights instead of DaNet-edge.
It lives in :mod:`hmrt.commands` because those fallbacks span runtime, export and the data engine;
importing it loads neither torch nor hmrt.export.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from hmrt.runtime.cli_run import SMOOTH_CHOICES, add_model_arguments

DEMO_MODEL = ("danet", "edge")
BUNDLED_MODELS = ("danet", "decomr", "bobw", "hkmr", "hemlets")
"""Models whose ``edge`` weights ship in ``assets/weights``: ``hmrt demo --model NAME`` runs them."""
ROI_MODES = {
    "every-frame": "the clip's ground-truth box on every frame (a stand-in for a person "
    "detector; --gt-boxes acquisition: track from the model's 2D joints)",
    "acquisition": "the clip's ground-truth box on the first frame and after a loss, "
    "tracked from the model's 2D joints otherwise",
    "off": "hmrt's embedded person detector, then tracked from the model's 2D joints",
}
CLIP_NAME = "demo_clip.mp4"
GT_SUFFIXES = (".npz", ".gt.npz", "_gt.npz")
WEIGHTS_SHA_KEY = "hmrt.weights_sha256"
"""ONNX metadata key: sha256 of the checkpoint an export was made from (stale-export check)."""
GOOD_PA_MPJPE_MM = 150.0
"""A frame counts as good at or below this PA-MPJPE: about the error of the mean pose and shape
on synth-val (150.5 mm), so a good frame beats guessing the average body."""
DEMO_OPSET = 17
DEMO_ROI_POOL = "matmul"
"""The demo export: RoI pooling as two MatMuls, the fastest form on ONNX Runtime CPU, which
parses on every TensorRT version too (docs/DEPLOY.md, "Deployment rewrites"); opset 17."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``hmrt demo`` options."""
    add_model_arguments(
        parser,
        model_required=False,
        model_help="hmrt .onnx or .engine file, or a bundled model: "
        f"{', '.join(BUNDLED_MODELS)} (default: {DEMO_MODEL[0]})",
    )
    parser.add_argument("--out", default="hmrt_out", metavar="DIR", help="output folder")
    parser.add_argument(
        "--clip", default=None, metavar="VIDEO", help="video instead of the demo clip"
    )
    parser.add_argument(
        "--ground-truth", default=None, metavar="NPZ",
        help="per-frame ground truth (joints3d, vertices); default: next to the clip",
    )  # fmt: skip
    parser.add_argument(
        "--smooth", default="default", choices=SMOOTH_CHOICES,
        help="temporal smoothing preset (One-Euro filters on joints, mesh, pose and camera); "
        "default: default",
    )  # fmt: skip
    parser.add_argument(
        "--max-frames", type=int, default=None, metavar="N",
        help="stop after N frames of the clip (default: all of it)",
    )  # fmt: skip
    parser.add_argument("--show", action="store_true", help="also show a window")
    parser.add_argument(
        "--gt-boxes", default="auto", choices=("auto", "every-frame", "acquisition", "off"),
        help="crop around the clip's ground-truth boxes (a stand-in for a person detector): "
        "on every frame (auto when the clip has boxes; the usual HMR evaluation protocol), "
        "only to find the person (first frame, after a loss; tracked from the model's 2D "
        "joints otherwise), or off (hmrt's embedded person detector)",
    )  # fmt: skip


# -- defaults: the bundled model and clip -------------------------------------------------
def bundled_onnx_path(model: tuple[str, str] = DEMO_MODEL) -> Path:
    """Where the package keeps the ONNX export of the bundled weights (it may be absent)."""
    from hmrt.assets import asset_path

    name, variant = model
    return asset_path(f"weights/{name}_{variant}.onnx")


def bundled_model(spec: str) -> tuple[str, str] | None:
    """``(name, "edge")`` when ``--model`` names a bundled model (``decomr``, ``decomr_edge``,
    ``bobw``, ``hkmr``, ...), else None (a path)."""
    name = spec.removesuffix("_edge")
    if name in BUNDLED_MODELS and not Path(spec).suffix:
        return (name, "edge")
    return None


def onnx_weights_sha(path: Path) -> str | None:
    """The ``hmrt.weights_sha256`` an ONNX file records: "" if none or unreadable, None
    without onnxruntime.

    Reads the metadata through ONNX Runtime, which runs the file anyway (the lean runtime never
    imports onnx); a session without graph optimisation loads in about 0.1 s.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception:  # ORT's own exception types (a truncated or corrupt file): not usable
        return ""
    return session.get_modelmeta().custom_metadata_map.get(WEIGHTS_SHA_KEY, "")


def export_demo_model(weights: Path, out: Path) -> dict[str, str]:
    """Export the checkpoint ``weights`` as the demo's ONNX ``out``; returns its metadata.

    The one export behind both the packaged files (``tools/export_bundled_onnx.py``) and the
    cache fallback: fp32, dynamic batch, opset 17, RoI pooling as MatMuls (DaNet) and the UV
    layers in their default forms (DecoMR, BoBW: ScatterElements-add and the gather table), plus
    ``hmrt.weights_sha256`` (the checkpoint's sha256) so that a stale export is detectable.
    Needs the ``export`` extra (torch, onnx).
    """
    import onnx

    from hmrt.export.model_source import load_model
    from hmrt.export.onnx_export import ExportOptions, export_model, set_metadata
    from hmrt.runtime.atomic import atomic_path
    from hmrt.runtime.cache import file_sha256

    src = load_model(checkpoint=weights)
    opts = ExportOptions(opset=DEMO_OPSET, roi_pool=DEMO_ROI_POOL)
    with atomic_path(Path(out)) as tmp:
        result = export_model(src.model, tmp, src.name, src.variant, opts)
        graph = onnx.load(str(tmp))
        meta = dict(result.metadata, **{WEIGHTS_SHA_KEY: file_sha256(weights)})
        set_metadata(graph, meta)
        onnx.checker.check_model(graph, full_check=True)
        onnx.save(graph, str(tmp))
    return meta


def default_model(model: tuple[str, str] = DEMO_MODEL) -> Path:
    """The ONNX of the bundled ``model`` weights (DaNet-edge by default): the packaged export
    when it matches them, else a cached export made on first use (needs torch)."""
    from hmrt.assets import asset_path
    from hmrt.runtime.cache import cache_dir, file_sha256
    from hmrt.runtime.errors import InputError, MissingDependencyError

    name, variant = model
    weights = asset_path(f"weights/{name}_{variant}.pt")
    packaged = bundled_onnx_path(model)
    if packaged.is_file() and not weights.is_file():
        return packaged  # an install with the ONNX alone: nothing to compare it with
    if not weights.is_file():
        raise InputError(
            f"the bundled {name}-{variant} weights ({weights}) are not in this install; run "
            "the demo on an exported model: hmrt demo --model MODEL.onnx"
        )
    sha = file_sha256(weights)
    if packaged.is_file():
        recorded = onnx_weights_sha(packaged)
        if recorded is None or recorded == sha:  # None: no ONNX Runtime; loading will say so
            return packaged
        print(
            f"note: {packaged} is not the export of {weights.name} (other weights, or "
            "unreadable; re-run tools/export_bundled_onnx.py): using a cached export instead"
        )
    form = f"_{DEMO_ROI_POOL}" if name == "danet" else ""
    out = cache_dir() / "models" / f"{name}_{variant}{form}-{sha[:12]}.onnx"
    if out.is_file():
        return out
    try:
        # torch is needed only here, for a checkout whose packaged ONNX is missing or stale.
        import hmrt.export.onnx_export  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(
            getattr(exc, "name", None) or "torch",
            "hmrt demo's export of the bundled weights (the packaged ONNX is missing or stale)",
            'pip install torch==2.13.0 && pip install "hmrt[export]" (or pass --model MODEL.onnx)',
        ) from exc
    print(f"exporting the bundled {name}-{variant} weights to {out} (first run only)")
    export_demo_model(weights, out)
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
    clip's intrinsics ``K`` (the data engine's ``clip.gt.npz``; fixed for a clip).

    Without ``vertices`` but with ``rotmats``, ``betas``, ``transl`` and the ``body_hash`` of
    the installed body model (the packaged demo clip, which keeps its ground truth small), the
    vertices are rebuilt with that body model, as the data engine posed them.
    """
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
            if verts is None and keys >= {"rotmats", "betas", "transl", "body_hash"}:
                verts = _posed_vertices(
                    data["rotmats"], data["betas"], data["transl"], str(data["body_hash"])
                )
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


def _posed_vertices(rotmats, betas, transl, body_hash: str):
    """Camera-frame vertices ``(T, V, 3)`` of SMPL parameters on the installed body model, or
    None when the parameters were made with another body model (then PVE is not reported)."""
    from hmrt.runtime.body import BodyModel, default_body_path

    if not default_body_path().is_file():
        return None
    body = BodyModel()
    if body.hash != body_hash or rotmats.ndim != 4 or len(rotmats) != len(transl):
        return None
    verts, _ = body.forward(rotmats, betas)
    return verts + transl[:, None].astype(verts.dtype)


class ClipBoxes:
    """A detector that answers with the clip's ground-truth box of the frame being processed.

    The demo's default crops: they are how HMR accuracy is usually reported (3DPW,
    Human3.6M), so the printed errors measure the mesh model, not the detector; the bundled
    weights were trained on person-centred crops (scale +-25%). ``--gt-boxes off`` runs hmrt's
    own person detector instead, and its lost frames then show in the demo's detection count.
    """

    def __init__(self, boxes, rec) -> None:
        self.boxes = boxes
        self.rec = rec

    def __call__(self, frame):
        i = self.rec.frame_index
        return self.boxes[i : i + 1] if i < len(self.boxes) else self.boxes[:0]


def accuracy(results_npz: Path, gt: dict, processed: int | None = None) -> dict:
    """Detection count and MPJPE / PA-MPJPE / PVE (mm) of the written results against the
    ground truth; a frame without a person counts as lost, never as accurate.

    Keys: ``frames`` (frames scored: the clip's frames that have ground truth), ``frames_found``
    / ``frames_lost`` / ``found_rate``; ``mpjpe``, ``pa_mpjpe`` and (with vertices) ``pve``
    averaged over the frames with a person (None when there are none); ``frames_within_150mm``
    and ``within_150mm_rate``: frames whose PA-MPJPE is at most :data:`GOOD_PA_MPJPE_MM`, out of
    all frames, so a lost frame is a miss. ``person_found`` comes from the results (all True for
    results written before that field existed); ``processed``: how many frames the run
    processed, so that a frame with no row in the results also counts as lost.
    """
    import numpy as np

    from hmrt.runtime.metrics import evaluate_3d, pa_mpjpe

    with np.load(results_npz, allow_pickle=False) as res:
        frames = res["frame"]
        pred_j, pred_v = res["joints3d"], res["vertices"]
        found = (
            res["person_found"].astype(bool)
            if "person_found" in res.files
            else np.ones(len(frames), dtype=bool)
        )
    n_gt = len(gt["joints3d"])
    keep = (frames >= 0) & (frames < n_gt)
    frames, pred_j, pred_v, found = frames[keep], pred_j[keep], pred_v[keep], found[keep]
    total = max(len(np.unique(frames)), min(processed or 0, n_gt))
    hit = frames[found]
    gt_j = gt["joints3d"][hit]
    gt_v = gt["vertices"]
    out: dict = {"frames": total, "frames_found": len(hit), "frames_lost": total - len(hit),
                 "found_rate": len(hit) / total if total else 0.0}  # fmt: skip
    with_pve = gt_v is not None and gt_v.shape[1] == pred_v.shape[1]
    if len(hit):
        if with_pve:
            out.update(evaluate_3d(pred_j[found], gt_j, pred_v[found], gt_v[hit]))
        else:
            out.update(evaluate_3d(pred_j[found], gt_j))
        per_frame = np.atleast_1d(pa_mpjpe(pred_j[found], gt_j))
        good = int(np.sum(per_frame <= GOOD_PA_MPJPE_MM))  # NaN (broken output) is a miss
    else:
        out.update(dict.fromkeys(("mpjpe", "pa_mpjpe", "pve")[: 3 if with_pve else 2]))
        good = 0
    out["frames_within_150mm"] = good
    out["within_150mm_rate"] = good / total if total else 0.0
    return out


def accuracy_lines(metrics: dict) -> list[str]:
    """The demo's printed accuracy: detections first, then errors over the found frames, then
    the share of all frames that are both found and within 150 mm PA-MPJPE."""
    total, found = metrics["frames"], metrics["frames_found"]
    lines = [f"person found on {found}/{total} frames ({metrics['frames_lost']} lost)"]
    if found:
        pve = f"  PVE {metrics['pve']:.1f} mm" if metrics.get("pve") is not None else ""
        lines.append(
            f"accuracy on the {found} frames with a person: MPJPE {metrics['mpjpe']:.1f} mm  "
            f"PA-MPJPE {metrics['pa_mpjpe']:.1f} mm{pve}"
        )
    else:
        lines.append("accuracy: no frame had a person, so there is nothing to score")
    lines.append(
        f"frames within {GOOD_PA_MPJPE_MM:.0f} mm PA-MPJPE: {metrics['frames_within_150mm']}/"
        f"{total} (a lost frame counts as a miss)"
    )
    return lines


def run(args: argparse.Namespace) -> int:
    """Run the demo and print FPS and accuracy; HmrtErrors become one line and exit code 2."""
    from hmrt.runtime.atomic import write_text_atomic
    from hmrt.runtime.cli_run import load_reconstructor, print_backend, print_report
    from hmrt.runtime.errors import InputError
    from hmrt.runtime.sources import open_source
    from hmrt.runtime.video_job import NPZ_NAME, process_source

    # first: a missing weights file should not wait for the clip
    if args.model is None:
        args.model = str(default_model())
    elif (model := bundled_model(args.model)) is not None:
        args.model = str(default_model(model))
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
        # Ground-truth boxes stand in for the detector: the embedded one is not loaded then.
        detector = "default" if boxes is None else "none"
        rec = load_reconstructor(args, smoothing=args.smooth, fps=source.fps, detector=detector)
    except BaseException:
        source.close()
        raise
    out_dir = Path(args.out)
    with rec:
        print_backend(rec, args.verbose)
        print(f"person boxes: {ROI_MODES[mode]}")
        if boxes is not None:
            rec.tracker.detector = ClipBoxes(boxes, rec)
            rec.tracker.detect_every = 1 if mode == "every-frame" else None
        job = process_source(
            rec, source, save=out_dir, show=args.show, max_frames=args.max_frames,
            save_flag="--out",
        )  # fmt: skip
    print_report(job.report, job.files)
    if gt is None:
        print(f"no ground truth found next to {clip}: accuracy not computed")
        return 0
    metrics = accuracy(out_dir / NPZ_NAME, gt, processed=job.report.frames)
    metrics.update({"fps": job.report.fps, "backend": rec.backend, "model": rec.info.name,
                    "smoothing": args.smooth, "clip": str(clip),
                    "gt_boxes": mode})  # fmt: skip
    path = write_text_atomic(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    for line in accuracy_lines(metrics):
        print(line)
    print(f"end-to-end: {job.report.fps:.1f} FPS on {rec.backend}")
    print(f"wrote {path}")
    return 0
