"""``hmrt calibrate``: an FP32 hmrt ONNX + calibration data -> the INT8 Q/DQ ONNX for TensorRT.

    hmrt calibrate --onnx danet_edge.onnx --data synth --out danet_edge.int8.onnx
    hmrt calibrate --onnx m.onnx --data clips/walk.mp4 --method percentile --calib-n 256 ...

The output builds on TensorRT 8.6 (weakly typed + INT8/FP16 flags), 10 and 11 (strongly
typed): ``python export/build_engine.py --onnx danet_edge.int8.onnx --int8``. Heavy imports
(onnx, onnxruntime, torch for ``synth``) happen inside :func:`run`. ``build_engine.py --int8``
reaches :func:`calibrate` through :func:`hmrt.export.int8_build.int8_graph_for_build` (the
export layer does the exporting; this module never imports hmrt.export).
"""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_CALIB_N = 512  # mirrors hmrt.calib.data.DEFAULT_CALIB_N (kept import-free here)


def _groups(text: str) -> tuple[str, ...]:
    return tuple(g.strip() for g in text.split(",") if g.strip())


DEFAULT_METHOD = "minmax"
"""The recommended INT8 range rule for Q/DQ graphs (docs/PRECISION.md, "Quantization-aware
training": on DaNet-edge minmax keeps PA-MPJPE within 0.4 mm of FP32, entropy loses 87 mm)."""


def add_calibration_arguments(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """Data and method flags shared by ``hmrt calibrate`` and ``build_engine.py --int8``.

    ``prefix`` (``"calib-"``) namespaces them in build_engine (``--calib-data``, ...).
    """
    g = parser.add_argument_group("INT8 calibration")
    g.add_argument(
        f"--{prefix}data",
        default=None,
        required=not prefix,
        metavar="DIR|VIDEO|synth",
        help="calibration images: a folder, a video, or 'synth' (synthetic scenes)"
        + (
            "; --int8 from a model calibrates on synth by default, from an FP32 --onnx only "
            "when this is given (--int8-mode legacy: synth by default)"
            if prefix
            else ""
        ),
    )
    g.add_argument(
        "--calib-n",
        type=int,
        default=DEFAULT_CALIB_N,
        metavar="N",
        help=f"calibration crops (default {DEFAULT_CALIB_N})",
    )
    g.add_argument(
        f"--{prefix}method",
        choices=("entropy", "minmax", "percentile"),
        default=None,
        help="activation range rule (default minmax: on DaNet-edge TensorRT's KL 'entropy' rule "
        "clips the sparse IUV maps, +87 mm PA-MPJPE vs +0.4 mm; docs/PRECISION.md"
        + ("; --int8-mode legacy is TensorRT's entropy calibrator)" if prefix else ")"),
    )
    g.add_argument(
        "--calib-seed", type=int, default=None, help="seed of the image subset / synthetic scenes"
    )
    g.add_argument(
        "--calib-body", default=None, metavar="NPZ", help="body model for 'synth' (default bundled)"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``hmrt calibrate``."""
    parser.add_argument(
        "--onnx",
        type=Path,
        default=None,
        help="FP32 hmrt ONNX (hmrt export); required unless --qat --checkpoint",
    )
    parser.add_argument("--out", type=Path, required=True, help="INT8 Q/DQ ONNX to write")
    add_calibration_arguments(parser)
    parser.add_argument(
        "--per-channel",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="per-output-channel weight scales (default on; --no-per-channel: per tensor)",
    )
    parser.add_argument(
        "--float-groups",
        type=_groups,
        default=(),
        metavar="G1,G2",
        help="layer groups to leave in float (see docs/PRECISION.md), e.g. refinement",
    )
    parser.add_argument(
        "--float-depthwise",
        action="store_true",
        help="leave depthwise convolutions in float",
    )
    parser.add_argument(
        "--op-types",
        type=_groups,
        default=None,
        metavar="Conv,Gemm,...",
        help="op types to quantize (default Conv,Gemm,MatMul,Add)",
    )
    parser.add_argument(
        "--backend",
        choices=("onnxruntime", "modelopt"),
        default="onnxruntime",
        help="quantizer: onnxruntime (default, opset kept: TensorRT 8.6/10/11) or modelopt "
        "(needs nvidia-modelopt[onnx] in its own venv; opset >= 19: TensorRT 10/11)",
    )
    parser.add_argument(
        "--target",
        choices=("tensorrt", "onnxruntime-cpu"),
        default="tensorrt",
        help="tensorrt (default): symmetric int8 Q/DQ for TensorRT 8.6/10/11; onnxruntime-cpu: "
        "ORT's uint8 CPU recipe (faster on x86, not loadable by TensorRT)",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="activation-range cache (JSON): reused when it exists and matches the ONNX file "
        "and --method, else written",
    )
    parser.add_argument(
        "--cpu-copy",
        type=Path,
        default=None,
        help="also write the ONNX Runtime CPU form (uint8 activations, same scales; see "
        "docs/PRECISION.md)",
    )
    parser.add_argument("--batch", type=int, default=8, help="calibration batch (default 8)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_qat_arguments(parser)


def add_qat_arguments(parser: argparse.ArgumentParser) -> None:
    """``--qat`` and its recipe (docs/PRECISION.md, "Quantization-aware training")."""
    g = parser.add_argument_group(
        "quantization-aware training (QAT: fine-tune with fake quantization, then write the "
        "same Q/DQ graph with the learned ranges)"
    )
    g.add_argument(
        "--qat",
        action="store_true",
        help="fine-tune --checkpoint with fake quantization where the INT8 graph quantizes, "
        "export it, and write --out from the QAT ranges (needs torchao)",
    )
    g.add_argument("--checkpoint", type=Path, default=None, help="--qat: trained checkpoint")
    g.add_argument(
        "--run-dir",
        type=Path,
        default=None,
        help="--qat: where qat.pt, qat_ranges.npz and the FP32 export go (default runs/qat_<ckpt>)",
    )
    g.add_argument("--steps", type=int, default=900, help="--qat: optimiser steps (default 900)")
    g.add_argument("--qat-lr", type=float, default=1e-5, help="--qat: peak LR (default 1e-5)")
    g.add_argument("--qat-batch", type=int, default=8, help="--qat: batch size (default 8)")
    g.add_argument("--threads", type=int, default=0, help="--qat: torch threads (0: default)")
    g.add_argument(
        "--roi-pool",
        choices=("grid", "gather", "matmul"),
        default=None,
        help="--qat: RoI pooling form of the FP32 export (as hmrt export)",
    )
    g.add_argument(
        "--qat-ranges",
        type=Path,
        default=None,
        metavar="NPZ",
        help="write --out from the FP32 export of a QAT checkpoint (--onnx) and the "
        "qat_ranges.npz written next to it (no fine-tuning)",
    )


def _check_paths(onnx_path: Path, out: Path) -> None:
    from hmrt.runtime.errors import InputError

    if out.resolve() == onnx_path.resolve():
        raise InputError(f"--out {out} would overwrite the FP32 input; pick another file name")
    if out.suffix != ".onnx":
        raise InputError(f"--out {out}: the INT8 graph is an ONNX file; end the name in .onnx")


def calibrate(
    onnx_path: Path,
    out: Path,
    data: str,
    n: int,
    method: str = "entropy",
    per_channel: bool = True,
    seed: int | None = None,
    body: str | None = None,
    float_groups: tuple[str, ...] = (),
    op_types: tuple[str, ...] | None = None,
    cache: Path | None = None,
    batch: int = 8,
    progress: bool = True,
    target: str = "tensorrt",
    backend: str = "onnxruntime",
    float_depthwise: bool = False,
):
    """Validate inputs, make the crops, write the Q/DQ graph; returns the QuantizeResult."""
    from hmrt.calib.data import (
        CALIB_SEED,
        calibration_images,
        open_calibration_source,
        preprocessor_from_onnx,
    )
    from hmrt.calib.qdq import QuantizeOptions, load_fp32_graph, quantize_to_qdq
    from hmrt.runtime.model_info import onnx_contract

    _check_paths(onnx_path, out)
    # Fail on a bad ONNX before any crop is made: a valid FP32 graph that also meets the
    # runtime's model contract (a renamed input would give an INT8 graph `hmrt run` refuses).
    onnx_contract(str(onnx_path), load_fp32_graph(onnx_path))
    options = QuantizeOptions(
        method=method,
        per_channel=per_channel,
        op_types=tuple(op_types) if op_types else None,
        exclude_groups=tuple(float_groups),
        float_depthwise=float_depthwise,
        target=target,
        batch=batch,
    )
    pre = preprocessor_from_onnx(onnx_path)
    images = None
    description = str(data)
    if cache is None or not cache.is_file():
        source = open_calibration_source(data, n, CALIB_SEED if seed is None else seed, body)
        description = source.description
        images = calibration_images(source, pre, progress)
    if backend == "modelopt":
        return _modelopt(onnx_path, out, images, options, description)
    return quantize_to_qdq(onnx_path, out, images, options, description, cache, progress)


def _modelopt(onnx_path: Path, out: Path, images, options, description: str):
    """The ModelOpt path with the same plan, then hmrt's metadata on the result."""
    import onnx

    from hmrt.calib.modelopt_path import quantize_with_modelopt
    from hmrt.calib.qdq import QuantizeResult, int8_metadata, load_fp32_graph
    from hmrt.calib.qdq_edit import quantized_node_names
    from hmrt.calib.qdq_plan import make_plan
    from hmrt.runtime.atomic import atomic_path
    from hmrt.runtime.errors import InputError

    if images is None:
        raise InputError("--backend modelopt calibrates itself: pass --data (no --cache)")
    source = load_fp32_graph(onnx_path)
    plan = make_plan(source, op_types=options.op_types, exclude_groups=options.exclude_groups)
    quantize_with_modelopt(onnx_path, out, images, plan.nodes_to_exclude, options.method)
    model = onnx.load(str(out))
    meta = int8_metadata(
        {p.key: p.value for p in source.metadata_props}, options, description, len(images)
    )
    meta["hmrt.int8_format"] = "qdq-int8-modelopt"
    meta["hmrt.opset"] = str(
        next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    )
    del model.metadata_props[:]
    for key in sorted(meta):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, meta[key]
    with atomic_path(out) as tmp:
        onnx.save(model, str(tmp))
    return QuantizeResult(out, plan, quantized_node_names(model), 0, meta)


def run(args: argparse.Namespace) -> int:
    """Calibrate and print what was written."""
    from hmrt.runtime.atomic import check_writable
    from hmrt.runtime.errors import InputError

    if getattr(args, "qat", False):
        raise InputError("--qat is handled by `hmrt calibrate` (hmrt.commands.calibrate)")
    if args.onnx is None:
        raise InputError("--onnx FP32.onnx is required (or --qat --checkpoint CKPT)")
    check_writable(args.out, "file", "--out")  # before the (long) calibration
    if args.method is None:
        args.method = DEFAULT_METHOD
    if getattr(args, "qat_ranges", None) is not None:
        return run_qat_ranges(args, args.onnx)
    result = calibrate(
        args.onnx,
        args.out,
        args.data,
        args.calib_n,
        args.method,
        args.per_channel,
        args.calib_seed,
        args.calib_body,
        args.float_groups,
        args.op_types,
        args.cache,
        args.batch,
        not args.no_progress,
        args.target,
        args.backend,
        args.float_depthwise,
    )
    plan = result.plan
    kind = "INT8 Q/DQ" if args.target == "tensorrt" else "INT8 Q/DQ, ONNX Runtime CPU recipe"
    print(
        f"wrote {result.path} ({kind}, opset {result.metadata.get('hmrt.opset', '?')}, "
        f"{len(result.quantized_nodes)} nodes read int8; kept float: "
        f"{len(plan.islands)} FP32-island nodes, heads {', '.join(plan.heads) or 'none'}"
        + (f", groups {', '.join(plan.excluded_groups)}" if plan.excluded_groups else "")
        + f"; ranges: {args.method} on {result.metadata['hmrt.int8_calib_data']})"
    )
    if args.cpu_copy is not None and args.target == "tensorrt":
        write_cpu_copy(result.path, args.cpu_copy)
        print(f"wrote {args.cpu_copy} (ONNX Runtime CPU form: uint8 activations, same scales)")
    return 0


def run_qat_ranges(args: argparse.Namespace, fp32: Path) -> int:
    """Write ``--out`` from an FP32 export of a QAT checkpoint and its ``qat_ranges.npz``."""
    from hmrt.calib.qat_ranges import write_qat_graph
    from hmrt.calib.qdq import load_fp32_graph
    from hmrt.runtime.errors import InputError
    from hmrt.runtime.model_info import onnx_contract

    _check_paths(fp32, args.out)
    if not args.qat_ranges.is_file():
        raise InputError(f"--qat-ranges {args.qat_ranges}: file not found")
    if args.target != "tensorrt" or args.backend != "onnxruntime":
        raise InputError("QAT ranges make the TensorRT Q/DQ graph only (no --target/--backend)")
    if args.float_groups or args.float_depthwise or args.op_types:
        raise InputError("QAT ranges use the trained plan: no --float-groups/--op-types")
    onnx_contract(str(fp32), load_fp32_graph(fp32))
    progress = not args.no_progress
    result, match, description = write_qat_graph(
        fp32,
        args.qat_ranges,
        args.out,
        args.data,
        args.calib_n,
        args.calib_seed,
        args.calib_body,
        args.per_channel,
        progress,
    )
    print(
        f"wrote {result.path} (INT8 Q/DQ from QAT ranges, opset "
        f"{result.metadata.get('hmrt.opset', '?')}, {len(result.quantized_nodes)} nodes read "
        f"int8; {len(match.matched)} tensors took their QAT range, "
        f"{len(match.fallback_quantized)} quantized ones the minmax range on "
        f"{description}; kept float: {len(result.plan.islands)} "
        f"FP32-island nodes, heads {', '.join(result.plan.heads) or 'none'})"
    )
    if args.cpu_copy is not None:
        write_cpu_copy(result.path, args.cpu_copy)
        print(f"wrote {args.cpu_copy} (ONNX Runtime CPU form: uint8 activations, same scales)")
    return 0


def write_cpu_copy(int8_path: Path, out: Path) -> Path:
    """Write the uint8-activation copy of an INT8 graph (atomically)."""
    import onnx

    from hmrt.calib.ort_cpu import uint8_activations
    from hmrt.runtime.atomic import atomic_path

    model, _ = uint8_activations(onnx.load(str(int8_path)))
    for p in model.metadata_props:
        if p.key == "hmrt.int8_format":
            p.value = "qdq-uint8-activations-onnxruntime-cpu"
    with atomic_path(out) as tmp:
        onnx.save(model, str(tmp))
    return out
