"""``hmrt bench``: per-stage latency (p50/p90/p99) and end-to-end FPS on this machine.

    hmrt bench --model danet_edge.onnx --backend onnxruntime-cpu --threads 2
    hmrt bench --model danet_edge.engine --batch 4 --render

Decodes a real video (``--source``, else a generated 640x480 clip), then preprocess, inference,
postprocess, smoothing and (with ``--render``) the mesh overlay, one frame after another;
warm-up frames are excluded. Prints the machine, the table, the FPS and the share of pre- and
postprocessing. Without ``--model`` it uses the demo's model (see ``hmrt demo``): the command
module :mod:`hmrt.commands.bench` passes the demo's :func:`~hmrt.commands.demo.default_model`
in, since exporting it on first use is not the runtime's job.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from hmrt.runtime.cli_run import SMOOTH_CHOICES, add_model_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``hmrt bench`` options."""
    add_model_arguments(parser, model_required=False)
    parser.add_argument("--source", default=None, metavar="VIDEO", help="video to decode")
    parser.add_argument("--batch", type=int, default=1, help="crops per inference call")
    parser.add_argument("--frames", type=int, default=200, help="measured frames")
    parser.add_argument("--warmup", type=int, default=20, help="frames run before measuring")
    parser.add_argument("--render", action="store_true", help="include the mesh overlay")
    parser.add_argument("--smooth", default="default", choices=SMOOTH_CHOICES)
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write the summary as JSON")  # fmt: skip


def format_report(result, machine: dict[str, str]) -> str:
    """The printed benchmark: machine, per-stage table, end-to-end line."""
    from hmrt.runtime.stats import machine_text, percentiles, stage_table

    e2e = percentiles(result.total_ms)
    lines = [
        "machine:",
        machine_text(machine),
        "",
        f"model {result.model} | backend {result.backend} | batch {result.batch} | "
        f"{result.frames} frames measured (warm-up excluded)",
        stage_table(result.stage_ms, {"end-to-end (per frame)": result.total_ms}),
        "",
        f"end-to-end: {result.fps:.1f} FPS (p50 {e2e['p50']:.2f} ms/frame); "
        f"pre+post = {100 * result.share('preprocess', 'postprocess'):.1f}% of end-to-end",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace, default_model: Callable[[], Path] | None = None) -> int:
    """Load the model, benchmark, print (and optionally save) the report.

    ``default_model`` gives the model when ``--model`` is absent (the demo's cached ONNX).
    """
    from hmrt.runtime.atomic import write_text_atomic
    from hmrt.runtime.benchmark import run_benchmark
    from hmrt.runtime.cli_run import load_reconstructor, print_backend
    from hmrt.runtime.errors import InputError
    from hmrt.runtime.stats import machine_description

    if args.model is None:
        if default_model is None:
            raise InputError("hmrt bench needs --model MODEL.onnx|MODEL.engine")
        args.model = str(default_model())
    # One inference per frame, as in steady-state tracking: the second pass that refines a
    # whole-frame re-acquisition would make the numbers depend on the model's accuracy.
    with load_reconstructor(args, smoothing=args.smooth, refine_acquisition=False) as rec:
        print_backend(rec, args.verbose)
        result = run_benchmark(
            rec, args.source, frames=args.frames, warmup=args.warmup, batch=args.batch,
            render=args.render,
        )  # fmt: skip
    machine = machine_description()
    print(format_report(result, machine))
    if args.json:
        summary = {"machine": machine, **result.to_dict(), "threads": args.threads}
        write_text_atomic(args.json, json.dumps(summary, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
