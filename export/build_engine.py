"""Build a TensorRT engine (+ sidecar JSON) from a model, a checkpoint or an ONNX file.

``hmrt build-engine ...`` (from any folder) and ``python export/build_engine.py --model danet
--fp16`` (the script form, from any folder too: see :func:`_bootstrap`) share this parser.
Steps: export (or take, after checking it against the runtime's model contract) the ONNX, audit
it for the target TensorRT, pick the precision plan (:mod:`hmrt.export.precision_plan`), then
build with the installed TensorRT (:mod:`hmrt.export.trt_build`) and write ``<name>.engine`` and
``<name>.engine.json`` atomically. ``--int8`` builds from a Q/DQ graph (``--int8-mode qdq``,
the default) or calibrates the FP32 graph with TensorRT's legacy entropy calibrator
(``--int8-mode legacy``, TensorRT 8.6/10; :mod:`hmrt.export.int8_build`). Without TensorRT it
stops after the ONNX with one line and exit code 2. Outputs default to ``engines/`` in the
current folder (ignored by git when that is the repository).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``build_engine.py`` / ``hmrt build-engine``."""
    from hmrt.export.cli_export import TRT_CHOICES, add_model_arguments

    add_model_arguments(parser)
    parser.add_argument("--onnx", type=Path, help="build from this ONNX instead of a model")
    prec = parser.add_mutually_exclusive_group()
    prec.add_argument(
        "--fp16",
        action="store_true",
        help="FP16 engine (TRT 11: FP16 graph; 8.6/10: FP16 flag + FP32 islands)",
    )
    prec.add_argument(
        "--int8",
        action="store_true",
        help="INT8 engine: from a Q/DQ ONNX (see hmrt calibrate), or --int8-mode legacy",
    )
    from hmrt.export.int8_build import add_int8_arguments  # argparse only

    add_int8_arguments(parser)
    parser.add_argument(
        "--batch",
        default="1:1:8",
        metavar="MIN:OPT:MAX",
        help="optimization profile batch sizes (default 1:1:8)",
    )
    parser.add_argument(
        "--workspace",
        type=float,
        default=2.0,
        metavar="GB",
        help="builder workspace memory pool (default 2 GB; 0.25-1 on Jetson)",
    )
    parser.add_argument(
        "--out",
        "--output",
        type=Path,
        default=Path("engines"),
        help="output folder, or an .engine path (default: engines/ in the current folder)",
    )
    parser.add_argument(
        "--timing-cache",
        type=Path,
        default=None,
        help="timing cache file, loaded if present and saved after the build",
    )
    parser.add_argument(
        "--dla", type=int, default=None, metavar="N", help="build for DLA core N (GPU fallback on)"
    )
    parser.add_argument(
        "--version-compatible",
        action="store_true",
        help="version-compatible engine (runs on later TRT of the same major, "
        "and on the lean runtime)",
    )
    parser.add_argument(
        "--hardware-compat",
        default="NONE",
        choices=("NONE", "AMPERE_PLUS", "SAME_COMPUTE_CAPABILITY"),
        help="hardware compatibility level (default NONE: this GPU only)",
    )
    parser.add_argument(
        "--trt-version",
        choices=TRT_CHOICES,
        default=None,
        help="TensorRT version to audit and export for (default: the installed one, else 10)",
    )
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default 17)")
    parser.add_argument(
        "--roi-pool",
        choices=("grid", "gather", "matmul"),
        default=None,
        help="RoI pooling form (default: grid; gather for TRT 8.2/8.4; matmul: two MatMuls)",
    )
    parser.add_argument(
        "--uv-scatter",
        choices=("add", "matmul"),
        default=None,
        help="image-to-UV scatter-mean form (default: add; matmul for TRT 8.x)",
    )
    parser.add_argument(
        "--uv-sample",
        choices=("gather", "grid"),
        default=None,
        help="UV map -> vertices form (default: gather; grid = GridSample, TRT >= 8.5)",
    )


def _installed_target(trt) -> str | None:
    if trt is None:
        return None
    major, minor = (int(p) for p in str(trt.__version__).split(".")[:2])
    if major >= 10:
        return "11" if major >= 11 else "10"
    return f"{major}.{minor}" if (major, minor) >= (8, 2) else None


def _names(args: argparse.Namespace, precision: str) -> tuple[Path, Path, str]:
    """(engine path, onnx path, base name)."""
    if args.onnx is not None:
        base = args.onnx.stem
    elif args.checkpoint is not None:
        base = f"{args.checkpoint.stem}_{precision}"
    else:
        base = f"{args.model}_{args.variant}_{precision}"
    out = args.out
    if out.suffix in (".engine", ".plan"):
        engine, base = out, out.stem
    else:
        engine = out / f"{base}.engine"
    onnx_path = args.onnx if args.onnx is not None else engine.with_suffix(".onnx")
    return engine, onnx_path, base


def _build_command(
    args: argparse.Namespace,
    onnx_path: Path,
    engine: Path,
    precision: str,
    calib_cache: Path | None = None,
) -> str:
    cmd = [
        "python",
        "export/build_engine.py",
        "--onnx",
        str(onnx_path),
        "--out",
        str(engine),
        "--batch",
        args.batch,
        "--workspace",
        f"{args.workspace:g}",
    ]
    if precision != "fp32":
        cmd.append(f"--{precision}")
    if calib_cache is not None:  # the rebuild reads the cache instead of calibrating again
        cmd += ["--int8-mode", "legacy", "--calib-cache", str(calib_cache)]
    if args.version_compatible:
        cmd.append("--version-compatible")
    if args.dla is not None:
        cmd += ["--dla", str(args.dla)]
    if args.hardware_compat != "NONE":
        cmd += ["--hardware-compat", args.hardware_compat]
    return shlex.join(cmd)


def prepare_onnx(
    args: argparse.Namespace, target: str, precision: str, onnx_path: Path, int8_mode: str = "qdq"
):
    """Export the model (or load ``--onnx``) and audit it; returns the loaded ModelProto."""
    import onnx

    from hmrt.export.audit import audit_model
    from hmrt.export.int8_build import (
        check_int8_for_tensorrt,
        check_no_qdq,
        int8_graph_for_build,
    )
    from hmrt.export.precision_plan import INT8_NEEDS_QDQ, has_qdq
    from hmrt.runtime.errors import InputError
    from hmrt.runtime.model_info import onnx_contract

    legacy = precision == "int8" and int8_mode == "legacy"

    if args.onnx is not None:
        if args.checkpoint is not None or args.model is not None:
            raise InputError("--onnx excludes --checkpoint/--model: build from one source")
        if not args.onnx.is_file():
            raise InputError(f"ONNX file not found: {args.onnx}")
        try:
            model = onnx.load(str(args.onnx))
            onnx.checker.check_model(model)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"{args.onnx}: not a valid ONNX model ({first})") from exc
        # The runtime's model contract (one input `image`, the outputs and their shapes, the
        # hmrt metadata): an engine that `hmrt run` would refuse is not worth building.
        onnx_contract(str(args.onnx), model)
        audit_model(model, target, str(args.onnx))
        if legacy:  # TensorRT calibrates the FP32 graph itself
            check_no_qdq(model, args.onnx)
            return model
        if precision == "int8" and not has_qdq(model):
            if args.calib_data is None:  # an FP32 --onnx is calibrated only when asked to
                raise InputError(f"{args.onnx}: {INT8_NEEDS_QDQ}")
            return int8_graph_for_build(args, args.onnx, target)
        if precision == "int8":
            check_int8_for_tensorrt(model, args.onnx)
        return model
    if precision == "int8" and not legacy:  # export FP32, calibrate the Q/DQ graph (hmrt.calib)
        return int8_graph_for_build(args, None, target, onnx_path)
    from hmrt.export.cli_export import export_from_args

    graph_precision = "fp16" if precision == "fp16" and target == "11" else "fp32"
    ns = argparse.Namespace(**vars(args))
    ns.trt_version, ns.batch = target, None
    result = export_from_args(ns, onnx_path, graph_precision)
    print(f"wrote {result.path} ({graph_precision} graph, audited for TensorRT {target})")
    return onnx.load(str(result.path))


def run(args: argparse.Namespace) -> int:
    """Export/audit the ONNX, then build and write the engine and its sidecar."""
    from hmrt.export.batch_profile import check_against_graph, parse_batch_profile
    from hmrt.export.int8_build import check_legacy_available, int8_mode
    from hmrt.export.trt_api import TensorRTMissingError, import_tensorrt
    from hmrt.runtime.atomic import check_writable
    from hmrt.runtime.errors import MissingDependencyError

    precision = "fp16" if args.fp16 else "int8" if args.int8 else "fp32"
    mode = int8_mode(args)
    batch = parse_batch_profile(args.batch)
    try:
        trt = import_tensorrt()
    except MissingDependencyError:
        trt = None
    target = args.trt_version or _installed_target(trt) or "10"
    if precision == "int8" and mode == "legacy":
        check_legacy_available(trt, target)  # before any export or calibration
    engine, onnx_path, _ = _names(args, precision)
    check_writable(engine, "file", "--out")  # before export, calibration or the build
    if args.onnx is None and precision == "fp16" and target != "11":
        # TensorRT 8.6/10 build FP16 from the FP32 graph (weakly typed, FP16 flag): name the
        # ONNX for what it holds, not for the engine's precision.
        onnx_path = onnx_path.with_name(f"{onnx_path.stem.removesuffix('_fp16')}_fp32.onnx")
    model = prepare_onnx(args, target, precision, onnx_path, mode)
    onnx_path = getattr(args, "int8_onnx", None) or onnx_path  # set when --int8 calibrated one
    if args.dla is not None:
        from hmrt.export.audit import dla_findings

        for finding in dla_findings(model):  # what the DLA build keeps on the GPU, and why
            print(f"hmrt build-engine: DLA: {finding.line()}", file=sys.stderr)
    dim0 = model.graph.input[0].type.tensor_type.shape.dim[0]
    check_against_graph(batch, dim0.dim_value or None)
    if trt is None:
        raise TensorRTMissingError(str(onnx_path), target)
    return build_and_write(trt, args, model, onnx_path, engine, precision, batch, mode)


def build_and_write(
    trt, args, model, onnx_path: Path, engine: Path, precision: str, batch, int8_mode: str = "qdq"
) -> int:
    """Plan, build and write engine + sidecar (TensorRT present)."""
    from hmrt.export.dla import dla_gpu_nodes
    from hmrt.export.int8_build import calib_cache_path, legacy_calibrator
    from hmrt.export.precision_plan import features_of, plan_precision
    from hmrt.export.sidecar import make_sidecar, write_sidecar
    from hmrt.export.trt_build import BuildSettings, build_plan, gpu_info
    from hmrt.runtime.atomic import atomic_path

    plan = plan_precision(model, precision, features_of(trt), int8_mode)
    settings = BuildSettings(
        args.workspace,
        args.timing_cache,
        args.dla,
        args.version_compatible,
        args.hardware_compat,
        gpu_nodes=dla_gpu_nodes(model) if args.dla is not None else {},
    )
    calibrator, cache = None, None
    if plan.int8_calibration:
        cache = calib_cache_path(args, engine)
        calibrator = legacy_calibrator(trt, args, onnx_path, batch.opt, cache)
    try:
        outcome = build_plan(trt, onnx_path, plan, batch, settings, calibrator)
    finally:
        if calibrator is not None:
            calibrator.core.release()  # the device buffer of the last batch
    meta = {p.key: p.value for p in model.metadata_props}
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    with atomic_path(engine) as tmp:
        tmp.write_bytes(outcome.plan)
        data = make_sidecar(
            engine=engine,
            onnx_path=onnx_path,
            tensorrt_version=trt.__version__,
            precision=precision,
            strongly_typed=plan.strongly_typed,
            builder_flags=outcome.builder_flags,
            fp32_layers=outcome.fp32_layers,
            profiles=outcome.profiles,
            opset=opset,
            metadata=meta,
            version_compatible=args.version_compatible,
            hardware_compatibility_level=args.hardware_compat,
            gpu=gpu_info(),
            dla_core=args.dla,
            build_command=_build_command(args, onnx_path, engine, precision, cache),
        )
        write_sidecar(engine, data)
    print(
        f"wrote {engine} and {engine.name}.json (TensorRT {trt.__version__}, {precision}, "
        f"{'strongly' if plan.strongly_typed else 'weakly'} typed, "
        f"{outcome.fp32_layers} layers pinned FP32"
        + (f"; {len(outcome.gpu_layers)} layers on the GPU" if args.dla is not None else "")
        + (f"; calibration cache {cache}" if cache is not None else "")
        + ")"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Script entry: the same parser and error handling as ``hmrt build-engine``."""
    from hmrt.cli import main as cli_main

    return cli_main(["build-engine", *(sys.argv[1:] if argv is None else argv)])


def _bootstrap() -> None:
    """Make ``python export/build_engine.py`` work from any folder, installed or not.

    Run as a script, Python puts ``export/`` first on ``sys.path``, where its modules could
    shadow top-level packages: that entry is dropped. If ``hmrt`` is not importable (a checkout
    without ``pip install -e .``), the checkout's own package is used: ``src/hmrt`` with the
    repository root on its ``__path__``, which maps ``hmrt.runtime`` to ``runtime/`` and so on,
    as setup.py does for an install.
    """
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    try:
        import hmrt
    except ImportError:
        repo = here.parent
        sys.path.insert(0, str(repo / "src"))
        import hmrt

        hmrt.__path__.append(str(repo))


if __name__ == "__main__":
    _bootstrap()
    sys.exit(main())
