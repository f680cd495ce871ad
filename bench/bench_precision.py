"""Precision report benchmark: FP32 / FP16 / INT8 graphs of a model, accuracy on synth-val and
ONNX Runtime CPU latency, written into docs/BENCHMARKS.md.

Run from the repository root (keep it niced on a shared machine)::

    nice -n 10 python bench/bench_precision.py                      # DaNet-edge, bundled weights
    nice -n 10 python bench/bench_precision.py --checkpoint runs/danet_edge/best.pt
    nice -n 10 python bench/bench_precision.py --roi-pool gather --no-write
    nice -n 10 python bench/bench_precision.py --variants --checkpoint P --roi-pool gather

It is ``hmrt eval --precision-report --model danet --variant edge --write-benchmarks
--write-precision`` (both docs pages) with
this file's defaults (every flag of that command is accepted); the command line recorded in
BENCHMARKS.md is this script's. Latency is a benchmark, never a test: the DaNet-edge targets
(INT8 PA-MPJPE within 3 mm of FP32, INT8 >= 1.8x faster than FP32 on the CPU) are reported as met
or missed, with the per-layer-group sensitivity when missed. ``--variants`` instead prints the
INT8 recipe variants table (:mod:`hmrt.calib.variants` on the graph exported by
:func:`hmrt.export.precision_report.variants_for_model`: range rules, per-tensor weights, float
depthwise / first stage, ORT's CPU recipe) for docs/PRECISION.md.
"""

from __future__ import annotations

import argparse
import shlex
import sys


def main(argv: list[str] | None = None) -> int:
    """Parse ``hmrt eval``'s flags with this benchmark's defaults and run the report."""
    from hmrt.cli import main as cli_main

    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--variants", action="store_true")
    own, rest = ap.parse_known_args(argv)
    if own.variants:
        return _variants(rest)
    args = ["eval", "--precision-report"]
    if "--checkpoint" not in rest and "--model" not in rest:
        args += ["--model", "danet", "--variant", "edge"]
    if not own.no_write and "--write-benchmarks" not in rest:
        args.append("--write-benchmarks")
    if not own.no_write and "--write-precision" not in rest:
        args.append("--write-precision")
    args += rest
    command = shlex.join(["python", "bench/bench_precision.py", *argv])
    import os

    os.environ["HMRT_REPORT_COMMAND"] = command  # recorded in BENCHMARKS.md
    return cli_main(args)


def _variants(argv: list[str]) -> int:
    import datetime

    import torch

    from hmrt.calib.variants import variants_markdown
    from hmrt.export.model_source import load_model
    from hmrt.export.precision_report import variants_for_model
    from hmrt.runtime.stats import machine_line

    ap = argparse.ArgumentParser(prog="bench_precision.py --variants")
    ap.add_argument("--model", default="danet")
    ap.add_argument("--variant", default="edge")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--random-init", action="store_true")
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--calib-n", type=int, default=256)
    ap.add_argument("--roi-pool", choices=("grid", "gather", "matmul"), default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    src = load_model(args.model, args.variant, args.checkpoint, args.random_init)
    rows = variants_for_model(src, args.n, args.calib_n, args.roi_pool, args.threads,
                              progress=not args.no_progress)  # fmt: skip
    print(
        f"Command: `{shlex.join(['python', 'bench/bench_precision.py', '--variants', *argv])}`; "
        f"machine: {machine_line()}; {datetime.date.today().isoformat()}; "
        f"weights: {src.weights} {src.weights_path or ''}; synth-val[0:{args.n}], "
        f"{args.calib_n} synth calibration crops.\n"
    )
    print(variants_markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
