"""``hmrt run``: reconstruct the person in a video, a folder of images, an image or a camera.

    hmrt run --model danet_edge.onnx --source clip.mp4 --save out/
    hmrt run --model danet_edge.engine --source 0 --show --smooth light

Writes ``out/annotated.mp4``, ``out/results.npz`` and ``out/results.jsonl`` (all or nothing),
and prints the backend, the end-to-end FPS and a per-stage latency table.
"""

from __future__ import annotations

import argparse

BACKEND_CHOICES = ("auto", "tensorrt", "onnxruntime", "onnxruntime-trt", "onnxruntime-cuda",
                   "onnxruntime-cpu")  # fmt: skip
SMOOTH_CHOICES = ("none", "light", "default", "heavy")


def add_model_arguments(parser: argparse.ArgumentParser, model_required: bool = True) -> None:
    """Options shared by run, demo and bench: model, backend, threads, intrinsics, CUDA."""
    parser.add_argument(
        "--model", required=model_required, metavar="PATH", help="hmrt .onnx or .engine file"
    )
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
    parser.add_argument("--max-frames", type=int, default=None, metavar="N")
    parser.add_argument("--no-mesh", action="store_true", help="draw joints only, no mesh")
    parser.add_argument(
        "--independent",
        action="store_true",
        help="frames are unrelated photos: no tracking or smoothing across them",
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


def print_backend(rec) -> None:
    """Say which backend runs and why faster ones were skipped."""
    print(f"backend: {rec.backend}  (model {rec.info.name}, input {rec.info.res}px)")
    for note in rec.backend_notes:
        print(f"  note: {note}")


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
    from hmrt.runtime.errors import InputError
    from hmrt.runtime.sources import open_source
    from hmrt.runtime.video_job import process_source

    if args.max_frames is not None and args.max_frames < 1:
        raise InputError(f"--max-frames must be >= 1, got {args.max_frames}")
    source = open_source(args.source)
    try:
        rec = load_reconstructor(args, smoothing=args.smooth, fps=source.fps)
    except BaseException:
        source.close()
        raise
    with rec:
        print_backend(rec)
        out = process_source(
            rec, source, save=args.save, show=args.show, max_frames=args.max_frames,
            mesh=not args.no_mesh, independent=args.independent,
        )  # fmt: skip
    print_report(out.report, out.files)
    return 0
