"""The precision report's orchestration: load the model, export its graphs, hand them to calib.

``hmrt eval --precision-report`` (:mod:`hmrt.commands.eval`) ends in :func:`run_report`, and
``bench/bench_precision.py --variants`` in :func:`variants_for_model`. Exporting needs this
layer; calibrating, evaluating and timing stay in :mod:`hmrt.calib.precision_report` and
:mod:`hmrt.calib.variants`, which are handed the ONNX files (imports point one way:
calib <- export). The flags and the markdown are :mod:`hmrt.calib.report_cli`'s.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def export_report_graphs(
    source,
    roi_pool: str | None,
    folder: Path,
    qat_run: Path | None = None,
    body: object = None,
) -> dict[str, Path]:
    """Write the FP32 graph and the FP16 graph (FP32 islands, as for TensorRT 11) of
    ``source`` (a :class:`hmrt.export.model_source.ModelSource`) into ``folder``; with
    ``qat_run`` also ``qat_fp32``, the FP32 export of its ``qat.pt`` (same RoI pooling), which
    the QAT rows quantize with the run's ranges (``body``: as :func:`load_model`'s)."""
    from hmrt.export.onnx_export import ExportOptions, export_model

    fp32 = folder / f"{source.name}_{source.variant}_fp32.onnx"
    fp16 = folder / f"{source.name}_{source.variant}_fp16.onnx"
    export_model(source.model, fp32, source.name, source.variant, ExportOptions(roi_pool=roi_pool))
    fp16_options = ExportOptions(roi_pool=roi_pool, precision="fp16", trt_version="11")
    export_model(source.model, fp16, source.name, source.variant, fp16_options)
    paths = {"fp32": fp32, "fp16": fp16}
    if qat_run is not None:
        from hmrt.export.model_source import _body_layer
        from hmrt.train.checkpoint import load_checkpoint

        qat = load_checkpoint(qat_run / "qat.pt", body=_body_layer(body)).eval()
        paths["qat_fp32"] = folder / f"{source.name}_{source.variant}_qat_fp32.onnx"
        export_model(
            qat, paths["qat_fp32"], source.name, source.variant, ExportOptions(roi_pool=roi_pool)
        )
    return paths


def report_command() -> str:
    """The command line recorded with the table (``bench/bench_precision.py`` sets its own)."""
    import os
    import shlex
    import sys

    command = os.environ.get("HMRT_REPORT_COMMAND")
    if command:
        return command
    argv = [a for a in sys.argv[1:] if a != "--no-progress"]
    return "hmrt " + shlex.join(argv) if argv else "hmrt eval --precision-report"


def run_report(args: argparse.Namespace) -> int:
    """Load the model, build the report, print it; optionally write JSON and BENCHMARKS.md."""
    import dataclasses
    import datetime
    import functools
    import json

    import torch

    from hmrt.calib.precision_report import VERDICT_RULE, ReportOptions, build_report
    from hmrt.calib.report_cli import (
        PRECISION_SECTION,
        SECTION,
        format_markdown,
        replace_subsection,
        subsection_title,
    )
    from hmrt.export.model_source import load_model
    from hmrt.runtime.atomic import write_text_atomic
    from hmrt.runtime.errors import InputError

    if args.checkpoint is None and args.model is None:
        raise InputError("--precision-report needs --model NAME [--variant V] or --checkpoint PATH")
    qat_run = getattr(args, "qat_run", None)
    if qat_run is not None:
        missing = [f for f in ("qat.pt", "qat_ranges.npz") if not (Path(qat_run) / f).is_file()]
        if missing:
            raise InputError(
                f"--qat-run {qat_run}: no {' or '.join(missing)} (a `hmrt calibrate --qat` "
                "run folder holds both)"
            )
    threads = args.threads if args.threads > 0 else 1
    torch.set_num_threads(threads)
    source = load_model(args.model, args.variant, args.checkpoint, args.random_init, body=args.body)
    opts = ReportOptions(
        model=source.name,
        variant=source.variant,
        checkpoint=args.checkpoint,
        random_init=args.random_init,
        body=args.body,
        n=args.n,
        calib_data=args.calib_data,
        calib_n=args.calib_n,
        method=args.method,
        float_groups=tuple(g for g in args.float_groups.split(",") if g),
        roi_pool=args.roi_pool,
        threads=threads,
        latency_runs=args.latency_runs,
        sensitivity=args.sensitivity,
        sensitivity_n=args.sensitivity_n,
        progress=not args.no_progress,
        qat_ranges=Path(qat_run) / "qat_ranges.npz" if qat_run is not None else None,
    )
    qat_dir = Path(qat_run) if qat_run is not None else None
    graphs = functools.partial(
        export_report_graphs, source, opts.roi_pool, qat_run=qat_dir, body=args.body
    )
    report = build_report(source, opts, graphs)
    body = format_markdown(report, report_command(), datetime.date.today().isoformat())
    title = subsection_title(source.name, source.variant)
    print(f"{title}\n\n{body}")
    if args.json:
        data = {
            "rows": [
                {**dataclasses.asdict(r), "verdict": report.verdict(r.name)} for r in report.rows
            ],
            "verdicts": {r.name: report.verdict(r.name) for r in report.rows},
            "verdict_rule": VERDICT_RULE,
            "sensitivity": report.sensitivity,
            "qat_sensitivity": report.qat_sensitivity,
            "pa_delta_mm": {r.name: report.pa_delta(r.name) for r in report.rows},
            "speedup": {r.name: report.speedup(r.name) for r in report.rows if r.latency},
            "int8_kernels": report.int8_kernels,
        }
        write_text_atomic(args.json, json.dumps(data, indent=2, default=str) + "\n")
    targets = (
        (args.write_benchmarks, SECTION, "# Benchmarks and measured accuracy\n"),
        (args.write_precision, PRECISION_SECTION, "# Precision\n"),
    )
    for where, section, empty in targets:
        if where:
            path = Path(where)
            text = path.read_text() if path.is_file() else empty
            write_text_atomic(path, replace_subsection(text, section, title, body))
            print(f"updated {path} ({title})")
    return 0


def variants_for_model(
    source,
    n: int,
    calib_n: int,
    roi_pool: str | None,
    threads: int = 1,
    runs: int = 40,
    progress: bool = True,
) -> list[dict]:
    """Export the FP32 graph of ``source`` and score the INT8 recipe variants on it
    (:func:`hmrt.calib.variants.run_variants`)."""
    import tempfile

    from hmrt.calib.variants import run_variants
    from hmrt.export.onnx_export import ExportOptions, export_model

    with tempfile.TemporaryDirectory(prefix="hmrt_variants_") as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        export_model(
            source.model, fp32, source.name, source.variant, ExportOptions(roi_pool=roi_pool)
        )
        return run_variants(fp32, n, calib_n, threads, runs, progress)
