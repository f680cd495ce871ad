"""``hmrt run``: reconstruct the person in a video, a folder of images, an image or a camera.

    hmrt run --model danet_edge.onnx --source clip.mp4 --save out/
    hmrt run --model danet_edge.engine --source 0 --show --smooth light

Writes ``out/annotated.mp4``, ``out/results.npz`` and ``out/results.jsonl`` (all or nothing),
and prints the backend, the end-to-end FPS and a per-stage latency table. Arguments are checked
before anything is opened (the model file first, then intrinsics, box and detector options), so
a wrong command fails with one line naming the culprit, not a camera or model error.
"""

from __future__ import annotations

import argparse
import math

from hmrt.runtime.errors import InputError

BACKEND_CHOICES = ("auto", "tensorrt", "onnxruntime", "onnxruntime-trt", "onnxruntime-cuda",
                   "onnxruntime-cpu")  # fmt: skip
SMOOTH_CHOICES = ("none", "light", "default", "heavy")


def add_model_arguments(
    parser: argparse.ArgumentParser,
    model_required: bool = True,
    model_help: str = "hmrt .onnx or .engine file",
) -> None:
    """Options shared by run, demo and bench: model, backend, threads, intrinsics, CUDA."""
    parser.add_argument("--model", required=model_required, metavar="PATH", help=model_help)
    parser.add_argument(
        "--backend",
        default="auto",
        choices=BACKEND_CHOICES,
        help="auto: TensorRT for .engine; for .onnx ONNX Runtime with TensorRT EP > CUDA > CPU",
    )
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads")
    parser.add_argument(
        "--intrinsics",
        default=None,
        metavar="FX,FY,CX,CY",
        help="camera intrinsics in pixels (default: focal = image diagonal, centred)",
    )
    parser.add_argument(
        "--cuda",
        default="auto",
        choices=("auto", "cuda-python", "pycuda"),
        help="CUDA binding of the TensorRT backend",
    )
    parser.add_argument("--cuda-graph", action="store_true", help="TensorRT: replay CUDA graphs")
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="also say which faster backends are not available on this machine and why",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``hmrt run`` options."""
    add_model_arguments(parser)
    parser.add_argument(
        "--source", required=True, help="video file, folder of images, image, or camera index"
    )
    parser.add_argument("--show", action="store_true", help="show a window (needs a display)")
    parser.add_argument("--save", metavar="DIR", help="write annotated.mp4, results.npz/.jsonl")
    parser.add_argument(
        "--smooth", default="default", choices=SMOOTH_CHOICES, help="temporal smoothing preset"
    )
    parser.add_argument(
        "--max-frames",
        type=int,
        default=None,
        metavar="N",
        help="stop after N frames (default: the whole video, folder or camera stream)",
    )
    parser.add_argument("--no-mesh", action="store_true", help="draw joints only, no mesh")
    parser.add_argument(
        "--independent",
        action="store_true",
        help="frames are unrelated photos: no tracking or smoothing across them",
    )
    parser.add_argument(
        "--bbox",
        default=None,
        metavar="X0,Y0,X1,Y1",
        help="pin the person's box (pixels, top-left and bottom-right corners) on every frame "
        "instead of detecting and tracking it",
    )
    parser.add_argument(
        "--detector",
        default="default",
        metavar="{default,none,PATH.onnx}",
        help="who finds the person: default (the embedded person detector), none (search the "
        "whole frame, then track), or a person detector exported to ONNX",
    )
    parser.add_argument(
        "--detect-every",
        type=int,
        default=None,
        metavar="N",
        help="re-run the detector every N frames while tracking (1 = every frame; default: "
        "the runtime's choice)",
    )


def load_reconstructor(
    args: argparse.Namespace, smoothing: str = "none", fps: float = 30.0, **overrides
):
    """A Reconstructor from the shared options (imports the runtime only when called)."""
    from hmrt.runtime.reconstructor import Reconstructor

    return Reconstructor(
        args.model,
        backend=args.backend,
        intrinsics=args.intrinsics,
        smoothing=smoothing,
        threads=args.threads,
        fps=fps,
        cuda=args.cuda,
        cuda_graph=args.cuda_graph,
        **overrides,
    )


def print_backend(rec, verbose: bool = False) -> None:
    """Say which backend runs and, with ``verbose``, why faster ones were skipped.

    "X not available" is the normal state of a CPU-only install, so those notes are printed
    only with ``--verbose``; notes about a provider that failed to start or an engine warning
    are always printed, since they mean something is wrong.
    """
    print(f"backend: {rec.backend}  (model {rec.info.name}, input {rec.info.res}px)")
    name = getattr(rec, "detector_name", None)
    if name and name != "none":
        print(f"person detector: {name}")
    for note in rec.backend_notes:
        if verbose or "not available" not in note:
            print(f"  note: {note}")


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    """``"x0,y0,x1,y1"`` (pixels) -> a box, or InputError echoing the text and the form."""
    usage = "--bbox must be X0,Y0,X1,Y1 in pixels with X1 > X0 and Y1 > Y0, e.g. 100,40,300,460"
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise InputError(f"{usage}; got {text!r}")
    x0, y0, x1, y1 = values
    if x1 <= x0 or y1 <= y0:
        raise InputError(f"{usage}; got {text!r}, whose width or height is not positive")
    return x0, y0, x1, y1


def check_run_arguments(args: argparse.Namespace) -> dict[str, object]:
    """Validate the options of ``hmrt run`` before anything is opened.

    Returns the keyword overrides for :func:`load_reconstructor` (``detector``,
    ``detect_every``). The model file is checked first: with a wrong model and a wrong camera,
    the model is what the user hears about.
    """
    from hmrt.runtime.backends.base import check_model_file
    from hmrt.runtime.intrinsics import parse_intrinsics

    check_model_file(args.model)
    if args.max_frames is not None and args.max_frames < 1:
        raise InputError(f"--max-frames must be >= 1, got {args.max_frames}")
    if args.threads is not None and args.threads < 1:
        raise InputError(f"--threads must be >= 1, got {args.threads}")
    try:
        parse_intrinsics(args.intrinsics)
    except InputError as exc:
        raise InputError(f"--{exc}") from None
    args.bbox_xyxy = None if args.bbox is None else parse_bbox(args.bbox)
    detector = args.detector
    if detector not in ("default", "none"):
        if not detector.lower().endswith(".onnx"):
            raise InputError(
                f"--detector {detector!r}: choose default, none, or a person detector .onnx file"
            )
        check_model_file(detector, "detector file")
    if args.detect_every is not None:
        if args.detect_every < 1:
            raise InputError(
                f"--detect-every must be >= 1 (1 = every frame), got {args.detect_every}"
            )
        if detector == "none":
            raise InputError(
                "--detect-every needs a detector, but --detector is none; drop --detect-every "
                "or choose --detector default or PATH.onnx"
            )
    return {"detector": detector, "detect_every": args.detect_every}


def print_report(report, files) -> None:
    """FPS, drops, the stage table and the output files."""
    from hmrt.runtime.stats import percentiles, stage_table

    lat = percentiles(report.latency_ms)
    print(
        f"frames: {report.frames}  end-to-end: {report.fps:.1f} FPS  "
        f"latency p50 {lat['p50']:.1f} ms"
    )
    if report.capture_dropped or report.render_dropped:
        print(
            f"dropped: {report.capture_dropped} stale camera frames, "
            f"{report.render_dropped} renders"
        )
    print(stage_table(report.stage_ms))
    for f in files:
        print(f"wrote {f}")


def run(args: argparse.Namespace) -> int:
    """Run the job; HmrtErrors propagate to the dispatcher (one line, exit code 2)."""
    from hmrt.runtime.sources import open_source
    from hmrt.runtime.video_job import process_source

    overrides = check_run_arguments(args)
    if args.save is not None:
        from hmrt.runtime.atomic import check_writable

        check_writable(args.save, "dir", "--save")  # before the model or the camera opens
    source = open_source(args.source)
    try:
        rec = load_reconstructor(args, smoothing=args.smooth, fps=source.fps, **overrides)
    except BaseException:
        source.close()
        raise
    with rec:
        print_backend(rec, args.verbose)
        out = process_source(
            rec, source, save=args.save, show=args.show, max_frames=args.max_frames,
            mesh=not args.no_mesh, independent=args.independent, bbox=args.bbox_xyxy,
        )  # fmt: skip
    print_report(out.report, out.files)
    return 0
