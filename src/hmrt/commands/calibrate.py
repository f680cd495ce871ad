"""``hmrt calibrate``: post-training calibration (hmrt.calib), or ``--qat`` (calib + export).

Without ``--qat`` this is :func:`hmrt.calib.cli.run` unchanged. With ``--qat`` it needs three
layers, hence this command module: fine-tune the checkpoint with fake quantization
(:func:`hmrt.calib.qat.fine_tune`: ``qat.pt`` + ``qat_ranges.npz`` in ``--run-dir``), export
the fine-tuned weights to the FP32 ONNX (:func:`hmrt.export.onnx_export.export_model`), and
write the Q/DQ graph from the QAT ranges with the PTQ writer
(:func:`hmrt.calib.qat_ranges.write_qat_qdq`), so the two graphs share their structure::

    hmrt calibrate --qat --checkpoint assets/weights/danet_edge.pt --data synth \\
        --steps 900 --run-dir runs/qat_edge --out danet_edge.qat.int8.onnx
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``hmrt calibrate``'s flags (:func:`hmrt.calib.cli.add_arguments`, ``--qat`` included)."""
    from hmrt.calib.cli import add_arguments as add_calib_arguments

    add_calib_arguments(parser)


def check_qat_arguments(args: argparse.Namespace) -> Path:
    """Validate ``--qat`` before any heavy import; returns the run directory."""
    from hmrt.runtime.errors import InputError

    if args.checkpoint is None:
        raise InputError("--qat needs --checkpoint CKPT (the trained weights to fine-tune)")
    if args.onnx is not None or args.qat_ranges is not None:
        raise InputError("--qat exports the fine-tuned checkpoint itself: drop --onnx/--qat-ranges")
    if not args.checkpoint.is_file():
        raise InputError(f"--checkpoint {args.checkpoint}: file not found")
    if args.out.suffix != ".onnx":
        raise InputError(f"--out {args.out}: the INT8 graph is an ONNX file; end the name in .onnx")
    if args.steps < 1 or args.qat_batch < 1 or not args.qat_lr > 0:
        raise InputError("--steps and --qat-batch must be >= 1 and --qat-lr > 0")
    run_dir = args.run_dir or Path("runs") / f"qat_{args.checkpoint.stem}"
    if (run_dir / "qat.pt").exists():
        raise InputError(f"{run_dir} already holds a QAT run (qat.pt); choose another --run-dir")
    return run_dir


def run_qat(args: argparse.Namespace) -> int:
    """Fine-tune, export, write the Q/DQ graph; prints each file written."""
    from hmrt.runtime.atomic import check_writable

    run_dir = check_qat_arguments(args)
    check_writable(args.out, "file", "--out")
    import time

    from hmrt.calib.qat import QatOptions, fine_tune
    from hmrt.export.onnx_export import ExportOptions, export_model
    from hmrt.train.checkpoint import load_checkpoint, model_spec

    progress = not args.no_progress
    model = load_checkpoint(args.checkpoint, eval_mode=False)
    spec = model_spec(model)
    options = QatOptions(
        steps=args.steps, batch_size=args.qat_batch, lr=args.qat_lr, threads=args.threads
    )
    t0 = time.perf_counter()
    print(
        f"hmrt calibrate --qat: {spec['name']}/{spec['variant']} from {args.checkpoint}, "
        f"{options.steps} steps of {options.batch_size}, lr {options.lr:g} -> {run_dir}",
        file=sys.stderr,
    )
    model, ckpt = fine_tune(model, run_dir, options, progress=progress, log=_quiet(progress))
    minutes = (time.perf_counter() - t0) / 60
    print(f"wrote {ckpt} (QAT fine-tuned weights, {minutes:.1f} min)")
    fp32 = run_dir / "qat_fp32.onnx"
    export_model(
        model.eval(), fp32, spec["name"], spec["variant"], ExportOptions(roi_pool=args.roi_pool)
    )
    print(f"wrote {fp32} (FP32 export of the QAT weights)")
    from hmrt.calib.cli import run_qat_ranges

    args.qat_ranges = run_dir / "qat_ranges.npz"
    return run_qat_ranges(args, fp32)


def _quiet(progress: bool):
    """Log lines to stderr only without the progress bar (the bar shows the loss itself)."""

    def log(line: str) -> None:
        if not progress:
            print(line, file=sys.stderr, flush=True)

    return log


def run(args: argparse.Namespace) -> int:
    """``--qat``: :func:`run_qat`; otherwise post-training calibration."""
    if getattr(args, "qat", False):
        return run_qat(args)
    from hmrt.calib.cli import run as run_calibrate

    return run_calibrate(args)
