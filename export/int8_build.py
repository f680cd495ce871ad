"""INT8 for ``build_engine.py --int8``: the Q/DQ graph (default) or TensorRT's legacy calibrator.

``--int8-mode qdq`` (explicit quantization, TensorRT 8.6/10/11): build from a Q/DQ graph, made
here with :func:`hmrt.calib.cli.calibrate` when the input has none (:func:`int8_graph_for_build`).
``--int8-mode legacy`` (implicit quantization, TensorRT 8.6/10 only; issue 6): the FP32 graph is
built weakly typed with the INT8 and FP16 flags and the FP32 islands pinned, and TensorRT's
``IInt8EntropyCalibrator2`` (:mod:`hmrt.calib.trt_calibrator`) is fed crops from the
``--calib-data`` reader through the runtime preprocessing, in batches of the profile's opt batch.
Its cache (``--calib-cache``, default ``<engine>.calib.cache``) is read on a rebuild, so a rebuild
skips calibration, and written atomically. Explicit quantization wins: a graph that already has
Q/DQ nodes is refused in legacy mode.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hmrt.runtime.errors import InputError

INT8_MODES = ("qdq", "legacy")
LEGACY_GONE = (
    "has no implicit INT8 calibration (IInt8EntropyCalibrator2 and the INT8 builder flag were "
    "removed in TensorRT 11); build from a Q/DQ graph with --int8-mode qdq"
)


def add_int8_arguments(parser: argparse.ArgumentParser) -> None:
    """``--int8-mode`` and ``--calib-cache`` (with the ``--calib-*`` data flags of hmrt.calib)."""
    from hmrt.calib.cli import add_calibration_arguments  # argparse only

    add_calibration_arguments(parser, prefix="calib-")
    g = parser.add_argument_group("INT8 mode")
    g.add_argument(
        "--int8-mode",
        choices=INT8_MODES,
        default=None,
        help="qdq (default): build from a Q/DQ graph (calibrated with the --calib-* flags when "
        "the input has none; TensorRT 8.6/10/11); legacy: FP32 graph + TensorRT's entropy "
        "calibrator on the --calib-data crops (TensorRT 8.6/10 only)",
    )
    g.add_argument(
        "--calib-cache",
        type=Path,
        default=None,
        metavar="FILE",
        help="legacy calibration cache: read when it exists (no calibration on rebuild), else "
        "written (default: <engine>.calib.cache)",
    )


def int8_mode(args: argparse.Namespace) -> str:
    """The INT8 mode of this build (``qdq`` unless ``--int8-mode legacy``); refuses INT8-only
    flags on a non-INT8 build and legacy-only flags in qdq mode."""
    mode = getattr(args, "int8_mode", None)
    cache = getattr(args, "calib_cache", None)
    if not args.int8:
        if mode is not None or cache is not None:
            flag = "--int8-mode" if mode is not None else "--calib-cache"
            raise InputError(f"{flag} applies to INT8 builds only: add --int8")
        return "qdq"
    mode = mode or "qdq"
    if mode == "qdq" and cache is not None:
        raise InputError(
            "--calib-cache is the legacy calibrator's cache: add --int8-mode legacy (Q/DQ "
            "graphs keep their ranges in the graph; hmrt calibrate --cache keeps its own)"
        )
    if mode == "legacy" and args.calib_method not in (None, "entropy"):
        raise InputError(
            f"--calib-method {args.calib_method}: the legacy path is TensorRT's entropy "
            "calibrator (IInt8EntropyCalibrator2); for minmax or percentile ranges use "
            "--int8-mode qdq"
        )
    return mode


def calib_cache_path(args: argparse.Namespace, engine: Path) -> Path:
    """``--calib-cache``, else ``<engine>.calib.cache`` next to the engine."""
    if getattr(args, "calib_cache", None) is not None:
        return Path(args.calib_cache)
    return engine.with_name(engine.name + ".calib.cache")


def check_legacy_available(trt: Any, target: str) -> None:
    """Stop before any export when this TensorRT (or the target 11.x) cannot calibrate.

    Feature tests, not versions: ``trt.IInt8EntropyCalibrator2`` and ``BuilderFlag.INT8`` (the
    config's ``int8_calibrator`` is checked again when the builder config exists). Without
    TensorRT, a ``--trt-version 11`` target is refused for the same reason.
    """
    if trt is None:
        if target == "11":
            raise InputError(f"TensorRT 11 {LEGACY_GONE}")
        return
    flags = getattr(trt, "BuilderFlag", None)
    if not hasattr(trt, "IInt8EntropyCalibrator2") or not hasattr(flags, "INT8"):
        raise InputError(f"TensorRT {getattr(trt, '__version__', '?')} {LEGACY_GONE}")


def check_no_qdq(model, path: Path | str) -> None:
    """Legacy mode takes a graph without Q/DQ: explicit quantization wins over a calibrator."""
    from hmrt.export.precision_plan import has_qdq

    if has_qdq(model):
        raise InputError(
            f"{path} already has Q/DQ nodes (explicit quantization), which take precedence over "
            "a calibrator; build it with --int8 (--int8-mode qdq), or pass the FP32 graph for "
            "--int8-mode legacy"
        )


def legacy_calibrator(
    trt: Any, args: argparse.Namespace, onnx_path: Path, batch: int, cache: Path
) -> Any:
    """TensorRT's entropy calibrator over the ``--calib-data`` crops of ``onnx_path``.

    With an existing ``cache`` no crop is made (TensorRT reads the cache and never asks for
    data); otherwise crops come from ``--calib-data`` (default ``synth``) through the runtime
    preprocessing, batched to ``batch`` (the profile's opt batch).
    """
    from hmrt.calib.trt_calibrator import calibrator_core, make_entropy_calibrator

    if cache.is_file() and cache.stat().st_size > 0:
        print(f"reusing the calibration cache {cache} (delete it to recalibrate)")
    core = calibrator_core(
        onnx_path,
        args.calib_data or "synth",
        args.calib_n,
        batch,
        cache,
        seed=args.calib_seed,
        body=args.calib_body,
    )
    return make_entropy_calibrator(trt, core)


def int8_graph_for_build(
    args: argparse.Namespace, fp32_onnx: Path | None, target: str, out: Path | None = None
):
    """``--int8`` (qdq) without a Q/DQ graph: calibrate one with the --calib-* flags.

    ``fp32_onnx``: the user's FP32 ``--onnx`` (the INT8 graph goes next to the engine as
    ``<stem>.int8.onnx``), or None to export the model first (to a temporary folder; the INT8
    graph goes to ``out``). Returns the loaded INT8 ModelProto and records its path in
    ``args.int8_onnx`` for the build.
    """
    import tempfile

    import onnx

    from hmrt.calib.cli import calibrate
    from hmrt.export.cli_export import export_from_args

    data = args.calib_data or "synth"
    with tempfile.TemporaryDirectory(prefix="hmrt_build_int8_") as tmp:
        if fp32_onnx is None:
            ns = argparse.Namespace(**vars(args))
            ns.trt_version, ns.batch = target, None
            fp32_onnx = export_from_args(ns, Path(tmp) / "fp32.onnx", "fp32").path
        else:
            folder = args.out.parent if args.out.suffix in (".engine", ".plan") else args.out
            stem = args.out.stem if args.out.suffix in (".engine", ".plan") else fp32_onnx.stem
            out = folder / f"{stem}.int8.onnx"
        if args.calib_method is None:
            from hmrt.calib.cli import DEFAULT_METHOD

            args.calib_method = DEFAULT_METHOD  # the recommended recipe, named in the output
        result = calibrate(
            Path(fp32_onnx),
            Path(out),
            data,
            args.calib_n,
            args.calib_method,
            True,
            args.calib_seed,
            args.calib_body,
            progress=True,
        )
    print(
        f"wrote {result.path} (INT8 Q/DQ graph for TensorRT {target}: "
        f"{len(result.quantized_nodes)} nodes read int8; ranges: {args.calib_method} on "
        f"{result.metadata['hmrt.int8_calib_data']})"
    )
    args.int8_onnx = result.path
    return onnx.load(str(result.path))


def check_int8_for_tensorrt(model, path: Path) -> None:
    """Refuse an INT8 graph made for ONNX Runtime's CPU kernels (TensorRT needs zero points 0)."""
    meta = {p.key: p.value for p in model.metadata_props}
    if meta.get("hmrt.int8_target", "tensorrt") != "tensorrt":
        raise InputError(
            f"{path} is the ONNX Runtime CPU INT8 recipe (uint8, non-zero zero points), which "
            "TensorRT rejects; calibrate for TensorRT: hmrt calibrate --target tensorrt"
        )
