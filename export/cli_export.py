"""``hmrt export``: a checkpoint or bundled model -> ONNX (or a Triton model repository).

Heavy imports (torch, onnx) happen inside :func:`run`, so ``hmrt --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

TRT_CHOICES = ("8.2", "8.4", "8.5", "8.6", "10", "11")


def batch_arg(text: str) -> int | None:
    """``dynamic`` -> None, ``N`` -> N (argparse type)."""
    if text == "dynamic":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not 'dynamic' or a batch size") from None
    if value < 1:
        raise argparse.ArgumentTypeError("batch size must be >= 1")
    return value


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the model comes from (shared by ``hmrt export`` and ``build_engine``)."""
    src = parser.add_argument_group("model")
    src.add_argument("--checkpoint", type=Path, help="hmrt checkpoint (.pt: weights + config)")
    src.add_argument("--model", default=None, help="registry model name, e.g. danet")
    src.add_argument("--variant", default="edge", help="model variant (default: edge)")
    src.add_argument(
        "--random-init",
        action="store_true",
        help="export an untrained model (speed work only; never the default)",
    )


def add_graph_arguments(parser: argparse.ArgumentParser) -> None:
    """How the ONNX graph is made (shared by ``hmrt export`` and ``build_engine``)."""
    g = parser.add_argument_group("graph")
    g.add_argument(
        "--opset",
        type=int,
        default=None,
        help="ONNX opset (default: 17, or 13 for --trt-version 8.2/8.4)",
    )
    g.add_argument(
        "--roi-pool",
        choices=("grid", "gather", "matmul"),
        default=None,
        help="RoI pooling: grid = GridSample (TRT >= 8.5), gather = Gather/Mul/Add "
        "(TRT 8.2/8.4), matmul = separable bilinear as two MatMuls (any TRT; fastest on "
        "ONNX Runtime CPU); default: grid, or gather for --trt-version 8.2/8.4",
    )
    g.add_argument(
        "--uv-scatter",
        choices=("add", "matmul"),
        default=None,
        help="image-to-UV scatter-mean (DecoMR): add = ScatterElements reduction=add "
        "(TRT >= 10), matmul = one-hot MatMul (any TRT); default: add, or matmul for TRT 8.x",
    )
    g.add_argument(
        "--uv-sample",
        choices=("gather", "grid"),
        default=None,
        help="UV location map -> vertices (DecoMR): gather = constant table Gather/Mul/ReduceSum "
        "(any TRT; default), grid = GridSample (TRT >= 8.5)",
    )
    g.add_argument(
        "--hkmr-fold",
        choices=("on", "off"),
        default="on",
        help="HKMR: project the image feature once per module and fold each pass's per-joint "
        "heads into one matrix (exact; default on); off exports the training form",
    )
    g.add_argument(
        "--batch",
        type=batch_arg,
        default=None,
        metavar="dynamic|N",
        help="batch dimension of the graph (default: dynamic)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``hmrt export``."""
    add_model_arguments(parser)
    add_graph_arguments(parser)
    parser.add_argument(
        "--trt-version",
        choices=TRT_CHOICES,
        default="10",
        help="TensorRT version the graph must parse on (audit; default 10)",
    )
    parser.add_argument(
        "--precision",
        choices=("fp32", "fp16"),
        default="fp32",
        help="fp16: mixed-precision graph, FP32 islands kept (for TRT 11)",
    )
    parser.add_argument(
        "--format",
        choices=("onnx", "triton"),
        default="onnx",
        help="onnx file, or a Triton model repository folder",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output .onnx file (or repository folder for --format triton); "
        "default: <model>_<variant>[_fp16].onnx in the current folder",
    )
    parser.add_argument(
        "--engine",
        type=Path,
        default=None,
        help="--format triton: serve this TensorRT engine (platform tensorrt_plan) instead of "
        "the ONNX; its I/O dims are read from the exported ONNX",
    )


def default_onnx_name(model: str, variant: str, precision: str, roi_pool: str | None) -> str:
    """``danet_edge.onnx``, ``danet_edge_fp16.onnx``, ``danet_edge_gather.onnx`` (``_matmul``)."""
    parts = [model, variant]
    if roi_pool in ("gather", "matmul"):
        parts.append(roi_pool)
    if precision != "fp32":
        parts.append(precision)
    return "_".join(parts) + ".onnx"


def check_model_name(model: str | None, variant: str) -> None:
    """InputError for a ``--model``/``--variant`` the zoo does not have, listing the choices.

    Checked before looking for bundled weights: ``--model nosuch`` must say "unknown model",
    not "has no bundled weights".
    """
    from hmrt.runtime.errors import InputError
    from hmrt.train.models import get_entry, list_models

    if model is None:
        return
    try:
        entry = get_entry(model)
    except InputError:
        raise InputError(
            f"--model {model!r}: unknown model; choose one of {', '.join(list_models())}"
        ) from None
    if variant not in entry.variants:
        raise InputError(
            f"--variant {variant!r}: model {model} has no such variant; choose one of "
            f"{', '.join(entry.variants)}"
        )


def export_from_args(args: argparse.Namespace, out: Path | None = None, precision: str = "fp32"):
    """Load the model named by ``args`` and export it; returns the ExportResult."""
    from hmrt.export.model_source import load_model
    from hmrt.export.onnx_export import ExportOptions, export_model

    if args.checkpoint is None:
        check_model_name(args.model, args.variant)
    src = load_model(args.model, args.variant, args.checkpoint, args.random_init)
    if src.weights == "random-init":
        print(
            f"hmrt export: warning: {src.name}/{src.variant} has random weights "
            "(--random-init); outputs are meaningless",
            file=sys.stderr,
        )
    out = out or Path(default_onnx_name(src.name, src.variant, precision, args.roi_pool))
    opts = ExportOptions(
        opset=args.opset,
        roi_pool=args.roi_pool,
        batch=args.batch,
        uv_scatter=getattr(args, "uv_scatter", None),
        uv_sample=getattr(args, "uv_sample", None),
        hkmr_fold=getattr(args, "hkmr_fold", "on") == "on",
        trt_version=args.trt_version,
        precision=precision,
    )
    return export_model(src.model, out, src.name, src.variant, opts)


def run(args: argparse.Namespace) -> int:
    """Export; print what was written and the audit warnings."""
    from hmrt.runtime.atomic import check_writable

    # Before the export: an unwritable output is one line naming it and the fix, not a trace.
    if args.format == "triton":
        check_writable(args.out or Path("triton_repo"), "dir", "--out")
    else:
        check_writable(args.out or Path.cwd(), "file" if args.out else "dir", "--out")
    if args.format == "triton":
        return _run_triton(args)
    result = export_from_args(args, args.out, args.precision)
    meta = result.metadata
    print(
        f"wrote {result.path} (opset {meta['hmrt.opset']}, roi_pool {meta['hmrt.roi_pool']}, "
        f"{meta['hmrt.precision']}, audited for TensorRT {meta['hmrt.trt_target']}, "
        f"outputs {', '.join(result.outputs)})"
    )
    for line in result.warnings:
        print(f"hmrt export: audit warning: {line}", file=sys.stderr)
    return 0


def _run_triton(args: argparse.Namespace) -> int:
    """Export to a temporary ONNX next to the repository, then write the model folder."""
    from hmrt.export.triton_repo import write_triton_repo

    repo = args.out or Path("triton_repo")
    repo.parent.mkdir(parents=True, exist_ok=True)
    tmp_onnx = repo.parent / f".{repo.name}.export.onnx"
    try:
        result = export_from_args(args, tmp_onnx, args.precision)
        meta = result.metadata
        name = f"{meta['hmrt.model']}_{meta['hmrt.variant']}"
        if args.precision != "fp32":
            name += f"_{args.precision}"
        model_dir = write_triton_repo(repo, result.path, name, engine=args.engine)
    finally:
        tmp_onnx.unlink(missing_ok=True)
    print(f"wrote Triton model repository {repo} (model '{model_dir.name}')")
    return 0
