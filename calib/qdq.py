"""The INT8 graph: ONNX Runtime static quantization to explicit Q/DQ nodes.

Default target ``tensorrt`` (shared/research/tensorrt.md §1.5, §5.2): QDQ nodes (not
QOperator), int8 activations with symmetric ranges (every zero point 0: TensorRT rejects
others), int8 weights per output channel, float bias, float weights behind ``Q -> DQ`` (the form
TensorRT 8.6's parser documents), at the source graph's opset (17: ORT keeps it for int8). Q/DQ
sit on the inputs of the quantized ops only (TensorRT's placement: ``DQ -> Conv -> ReLU6 -> Q``,
fused by TensorRT; the ORT CPU form moves them for ORT, :mod:`hmrt.calib.ort_cpu`). The
same file builds on TensorRT 8.6 (weakly typed + INT8/FP16 flags), 10 and 11 (strongly typed).

Target ``onnxruntime-cpu``: ORT's own CPU recipe (uint8 activations, asymmetric where a tensor is
never negative so ReLU/ReLU6 fold into the convolution, int32 bias): faster on x86 CPUs, not
loadable by TensorRT (non-zero zero points); its metadata says so and build_engine refuses it.

What is quantized comes from :mod:`hmrt.calib.qdq_plan` (FP32 islands and final heads stay
float). Steps: ORT's quantization preprocessing (ONNX shape inference only: ORT's symbolic shape
inference gives up on this graph's GridSample/Tile shapes); ranges (:mod:`hmrt.calib.ranges`,
cached per source graph and method); ``quantize_static`` from those ranges; graph edits
(:mod:`hmrt.calib.qdq_edit`: no island or head reads an int8-rounded tensor); the hmrt metadata
with ``hmrt.precision=int8`` and the recipe; checker; atomic write.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from hmrt.calib.qdq_plan import DEFAULT_OP_TYPES, QuantPlan, make_plan
from hmrt.runtime.errors import InputError

METHODS = ("entropy", "minmax", "percentile")
TARGETS = ("tensorrt", "onnxruntime-cpu")
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
CALIBRATED_OP_TYPES = (*DEFAULT_OP_TYPES, "Clip", "Relu")
"""Ops whose tensors get ranges (a superset of any plan's, so one cache serves every plan)."""
CPU_OP_TYPES = (*DEFAULT_OP_TYPES, "Clip", "Relu")
FORMATS = {"tensorrt": "qdq-symmetric-int8", "onnxruntime-cpu": "qdq-uint8-onnxruntime-cpu"}


@dataclass
class QuantizeOptions:
    """The recipe of an INT8 graph (recorded in its metadata)."""

    # minmax, not TensorRT's entropy rule: on DaNet-edge entropy cuts the sparse IUV maps and
    # the ReLU6 outputs to a fraction of their range (+87 mm PA-MPJPE vs +0.4 mm; PRECISION.md).
    method: str = "minmax"
    per_channel: bool = True
    op_types: tuple[str, ...] | None = None  # None: the target's default
    exclude_groups: tuple[str, ...] = ()
    only_groups: tuple[str, ...] | None = None
    quantize_heads: bool = False
    float_depthwise: bool = False
    target: str = "tensorrt"
    batch: int = 8
    num_bins: int = 2048
    percentile: float = 99.99

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InputError(f"--method {self.method}: use one of {', '.join(METHODS)}")
        if self.target not in TARGETS:
            raise InputError(f"--target {self.target}: use one of {', '.join(TARGETS)}")
        if self.op_types is None:
            self.op_types = CPU_OP_TYPES if self.target == "onnxruntime-cpu" else DEFAULT_OP_TYPES


@dataclass
class QuantizeResult:
    """What was written: path, plan, how many nodes read int8 tensors, the metadata."""

    path: Path
    plan: QuantPlan
    quantized_nodes: list[str] = field(default_factory=list)
    bypassed: int = 0
    metadata: dict[str, str] = field(default_factory=dict)


def _ort_quantization():
    from hmrt.runtime.errors import MissingDependencyError, require

    q = require("onnxruntime.quantization", "INT8 calibration", "pip install 'onnxruntime>=1.31'")
    import inspect

    if "calibration_cache_path" not in inspect.signature(q.quantize_static).parameters:
        raise MissingDependencyError(
            "onnxruntime",
            "hmrt calibrate (ORT calibration caches, 1.31+)",
            "pip install -U 'onnxruntime>=1.31'",
        )
    return q


def preprocess(src: Path, dst: Path) -> None:
    """ORT's quantization preprocessing: ONNX shape inference only (node names are kept)."""
    q = _ort_quantization()
    try:
        q.quant_pre_process(str(src), str(dst), skip_optimization=True, skip_symbolic_shape=True)
    except Exception as exc:
        raise InputError(
            f"{src}: ONNX Runtime could not prepare it for quantization: {exc}"
        ) from exc


def calibrate_ranges(
    model_path: Path,
    images: np.ndarray,
    options: QuantizeOptions,
    model_sha256: str,
    progress: bool = True,
):
    """Histogram the activations over ``images``; return their ``RangeSet``."""
    from hmrt.calib.ranges import collect_histograms, range_set, tensors_to_calibrate

    model = onnx.load(str(model_path))
    names = tensors_to_calibrate(model, CALIBRATED_OP_TYPES)
    hists = collect_histograms(
        model_path,
        images,
        names,
        options.batch,
        options.num_bins,
        progress,
        desc=f"calibrating ({options.method})",
    )
    return range_set(hists, options.method, options.percentile, model_sha256)


def _quantize(pre: Path, out: Path, ort_cache: Path, plan: QuantPlan, o: QuantizeOptions) -> None:
    q = _ort_quantization()
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType

    method = {
        "entropy": CalibrationMethod.Entropy,
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
    }[o.method]
    if o.target == "tensorrt":
        act = QuantType.QInt8
        extra = {
            "ActivationSymmetric": True,  # zero points 0: TensorRT's requirement
            "WeightSymmetric": True,
            "DedicatedQDQPair": True,  # a DQ per reader (Qs merged afterwards)
            "QuantizeBias": False,  # float bias, as TensorRT (and ModelOpt) expect
            "AddQDQPairToWeight": True,  # float weight -> Q -> DQ
            # TensorRT's placement: Q/DQ on the inputs of the quantized ops only. A weighted
            # op's output is quantized where its reader needs it (the next conv, both inputs
            # of a residual Add), after its ReLU/ReLU6, never twice (Conv -> Q -> DQ -> Clip ->
            # Q rounded every activation twice). TensorRT fuses Conv + ReLU + Q itself.
            "OpTypesToExcludeOutputQuantization": list(plan.op_types),
        }
    else:
        act = QuantType.QUInt8
        extra = {"WeightSymmetric": True}
    with contextlib.redirect_stdout(io.StringIO()):
        q.quantize_static(
            str(pre),
            str(out),
            None,
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(plan.op_types),
            per_channel=o.per_channel,
            reduce_range=False,
            activation_type=act,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=plan.nodes_to_exclude,
            calibrate_method=method,
            calibration_cache_path=str(ort_cache),
            extra_options=extra,
        )


def int8_metadata(
    original: dict[str, str], options: QuantizeOptions, data: str, n: int
) -> dict[str, str]:
    """The source graph's hmrt metadata plus the INT8 recipe (precision ``int8``)."""
    meta = {k: v for k, v in original.items() if k.startswith("hmrt.")}
    meta.update(
        {
            "hmrt.precision": "int8",
            "hmrt.int8_target": options.target,
            "hmrt.int8_format": FORMATS[options.target],
            "hmrt.int8_method": options.method,
            "hmrt.int8_per_channel": "1" if options.per_channel else "0",
            "hmrt.int8_op_types": ",".join(options.op_types or ()),
            "hmrt.int8_calib_data": data,
            "hmrt.int8_calib_n": str(n),
        }
    )
    if options.exclude_groups:
        meta["hmrt.int8_float_groups"] = ",".join(options.exclude_groups)
    if options.float_depthwise:
        meta["hmrt.int8_float_depthwise"] = "1"
    if options.only_groups is not None:
        meta["hmrt.int8_only_groups"] = ",".join(options.only_groups)
    return meta


def load_fp32_graph(path: str | os.PathLike) -> onnx.ModelProto:
    """Load and check the source ONNX: an hmrt FP32 graph without Q/DQ."""
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"ONNX file not found: {path}; export one with `hmrt export --model danet` first"
        )
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"{path}: not a valid ONNX model ({first})") from exc
    meta = {p.key: p.value for p in model.metadata_props}
    if meta.get("hmrt.precision", "fp32") != "fp32" or any(
        n.op_type in QDQ_OPS for n in model.graph.node
    ):
        raise InputError(
            f"{path} is not an FP32 graph (hmrt.precision={meta.get('hmrt.precision')}); "
            "calibrate the FP32 export (`hmrt export --precision fp32`)"
        )
    return model


def load_ranges(cache: Path, options: QuantizeOptions, sha: str):
    """A reusable cache: same source graph and method, else InputError naming the fix."""
    from hmrt.calib.ranges import RangeSet

    ranges = RangeSet.load(cache)
    if ranges.model_sha256 != sha:
        raise InputError(
            f"{cache} was calibrated for another ONNX file (sha256 differs); delete it or pass "
            "another --cache path"
        )
    if ranges.method != options.method:
        raise InputError(
            f"{cache} holds {ranges.method} ranges but --method {options.method} was asked; "
            "delete the cache or use the same method"
        )
    return ranges


def quantize_to_qdq(
    fp32_path: str | os.PathLike,
    out_path: str | os.PathLike,
    images: np.ndarray | None,
    options: QuantizeOptions | None = None,
    data_description: str = "",
    cache_path: str | os.PathLike | None = None,
    progress: bool = True,
) -> QuantizeResult:
    """Write the Q/DQ INT8 graph of ``fp32_path`` to ``out_path`` (atomically).

    ``images``: calibration inputs ``(N, 3, H, W)`` (:mod:`hmrt.calib.data`); may be None when
    ``cache_path`` holds ranges for this graph and method (then reused; else written there).
    """
    from hmrt.calib.qdq_edit import (
        bypass_excluded_readers,
        clean_initializers,
        quantized_node_names,
        share_quantize_nodes,
    )
    from hmrt.calib.ranges import write_ort_cache
    from hmrt.runtime.atomic import atomic_path
    from hmrt.runtime.cache import file_sha256

    options = options or QuantizeOptions()
    source = load_fp32_graph(fp32_path)
    meta = {p.key: p.value for p in source.metadata_props}
    plan = make_plan(
        source,
        op_types=options.op_types or DEFAULT_OP_TYPES,
        exclude_groups=options.exclude_groups,
        only_groups=options.only_groups,
        quantize_heads=options.quantize_heads,
        float_depthwise=options.float_depthwise,
    )
    sha = file_sha256(fp32_path)
    cache = Path(cache_path) if cache_path is not None else None
    with tempfile.TemporaryDirectory(prefix="hmrt_int8_") as tmp:
        pre = Path(tmp) / "pre.onnx"
        preprocess(Path(fp32_path), pre)
        if cache is not None and cache.is_file():
            ranges = load_ranges(cache, options, sha)
        else:
            if images is None or len(images) == 0:
                raise InputError("no calibration crops and no calibration cache to reuse")
            ranges = calibrate_ranges(pre, images, options, sha, progress)
            ranges.data, ranges.n = data_description, len(images)
            if cache is not None:
                ranges.save(cache)
        ort_cache = write_ort_cache(ranges, options.target, Path(tmp) / "ort_ranges.json")
        raw = Path(tmp) / "qdq.onnx"
        _quantize(pre, raw, ort_cache, plan, options)
        model = onnx.load(str(raw))
    bypassed = bypass_excluded_readers(model, set(plan.nodes_to_exclude))
    if options.target == "tensorrt":
        share_quantize_nodes(model)
    clean_initializers(model)
    meta = int8_metadata(meta, options, ranges.data or data_description, ranges.n)
    del model.metadata_props[:]
    for key in sorted(meta):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, meta[key]
    onnx.checker.check_model(model, full_check=True)
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp_out:
        onnx.save(model, str(tmp_out))
    return QuantizeResult(out_path, plan, quantized_node_names(model), bypassed, meta)
