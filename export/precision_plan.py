"""Which precision mode a build uses and which layers it pins to FP32, decided without TensorRT.

Inputs: the ONNX graph (its dtypes, Q/DQ nodes and FP32-island node names, see
:mod:`hmrt.runtime.graph_islands`) and :class:`TrtFeatures` (what the installed TensorRT offers,
found with ``hasattr``). Policy (shared/research/tensorrt.md §1.3, §4, §9):

* TensorRT 11 (no ``BuilderFlag.FP16``): always strongly typed; FP16 comes from the FP16 graph
  (``hmrt export --precision fp16``), INT8 from Q/DQ nodes. No precision flags.
* TensorRT 8.6 / 10.x with an FP32 graph: weakly typed, ``FP16`` flag, every FP32-island layer
  pinned (``layer.precision`` + ``set_output_type``) and ``OBEY_PRECISION_CONSTRAINTS``.
* TensorRT 10.x with an FP16 or Q/DQ graph: strongly typed (never FP16/INT8 flags with it).
* Legacy INT8 (``int8_mode="legacy"``, TensorRT 8.6/10 only): the FP32 graph without Q/DQ,
  weakly typed, ``INT8`` + ``FP16`` flags, FP32 islands pinned with
  ``OBEY_PRECISION_CONSTRAINTS``, and an entropy calibrator on the builder config. A graph with
  Q/DQ nodes is refused (explicit quantization wins); TensorRT 11 has no calibrator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import onnx
from onnx import TensorProto

from hmrt.runtime.errors import InputError
from hmrt.runtime.graph_islands import island_nodes, island_of

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
INT8_NEEDS_QDQ = (
    "INT8 needs a Q/DQ graph: see issue 6 / hmrt calibrate (implicit INT8 calibration is gone "
    "in TensorRT 11)"
)


@dataclass(frozen=True)
class TrtFeatures:
    """What the installed TensorRT Python API offers (each found with hasattr)."""

    version: tuple[int, ...]
    explicit_batch_flag: bool  # NetworkDefinitionCreationFlag.EXPLICIT_BATCH (<= 10, gone in 11)
    strongly_typed_flag: bool  # NetworkDefinitionCreationFlag.STRONGLY_TYPED (>= 9)
    fp16_flag: bool  # BuilderFlag.FP16 (gone in 11)
    int8_flag: bool  # BuilderFlag.INT8 (gone in 11)
    obey_flag: bool  # BuilderFlag.OBEY_PRECISION_CONSTRAINTS (gone in 11)
    layer_precision: bool  # ILayer.precision / set_output_type (gone in 11)
    int8_calibrator: bool = False  # IInt8EntropyCalibrator2 (deprecated in 10.1, gone in 11)

    @property
    def weak_typing(self) -> bool:
        """Can this TensorRT build weakly typed FP16 networks with pinned layers?"""
        return self.fp16_flag and self.obey_flag and self.layer_precision

    @property
    def implicit_int8(self) -> bool:
        """Can this TensorRT calibrate INT8 itself (legacy, weakly typed INT8 builds)?"""
        return self.weak_typing and self.int8_flag and self.int8_calibrator


def features_of(trt: Any) -> TrtFeatures:
    """Feature-test a ``tensorrt`` module (hasattr, never version numbers)."""
    ndcf = getattr(trt, "NetworkDefinitionCreationFlag", None)
    flags = getattr(trt, "BuilderFlag", None)
    layer = getattr(trt, "ILayer", None)
    version = tuple(int(p) for p in str(trt.__version__).split(".")[:3] if p.isdigit())
    return TrtFeatures(
        version=version,
        explicit_batch_flag=hasattr(ndcf, "EXPLICIT_BATCH"),
        strongly_typed_flag=hasattr(ndcf, "STRONGLY_TYPED"),
        fp16_flag=hasattr(flags, "FP16"),
        int8_flag=hasattr(flags, "INT8"),
        obey_flag=hasattr(flags, "OBEY_PRECISION_CONSTRAINTS"),
        layer_precision=hasattr(layer, "precision") and hasattr(layer, "set_output_type"),
        int8_calibrator=hasattr(trt, "IInt8EntropyCalibrator2"),
    )


@dataclass
class PrecisionPlan:
    """The decision for one build."""

    precision: str
    strongly_typed: bool
    network_flags: list[str] = field(default_factory=list)
    builder_flags: list[str] = field(default_factory=list)
    pinned_nodes: list[str] = field(default_factory=list)  # ONNX node names to pin to FP32
    islands: dict[str, list[str]] = field(default_factory=dict)
    int8_calibration: bool = False  # legacy INT8: the builder needs a calibrator

    def pins(self, layer_name: str) -> bool:
        """Should the TensorRT layer ``layer_name`` be pinned to FP32?

        The ONNX parser names layers after nodes (sometimes with a suffix for helper layers), so
        a layer is pinned when its name carries an FP32-island tag and the plan pins layers.
        """
        return bool(self.pinned_nodes) and island_of(layer_name) is not None


def graph_float_types(model: onnx.ModelProto) -> set[int]:
    """Float element types used by initializers and graph values."""
    types = {t.data_type for t in model.graph.initializer}
    for v in [*model.graph.input, *model.graph.output, *model.graph.value_info]:
        types.add(v.type.tensor_type.elem_type)
    for n in model.graph.node:
        if n.op_type == "Cast":
            types.add(onnx.helper.get_attribute_value(n.attribute[0]))
    return types & {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16}


def has_qdq(model: onnx.ModelProto) -> bool:
    """Does the graph carry explicit quantization (Q/DQ nodes)?"""
    return any(n.op_type in QDQ_OPS for n in model.graph.node)


def float_island_nodes(model: onnx.ModelProto) -> list[str]:
    """Island node names whose outputs are floating point (only those can be pinned)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:
        inferred = model
    g = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*g.value_info, *g.output]}
    floats = (TensorProto.FLOAT, TensorProto.FLOAT16, 0)  # 0: unknown, pin to be safe
    names = []
    for n in g.node:
        if island_of(n.name) is not None and any(types.get(o, 0) in floats for o in n.output):
            names.append(n.name)
    return names


def plan_precision(
    model: onnx.ModelProto, precision: str, feats: TrtFeatures, int8_mode: str = "qdq"
) -> PrecisionPlan:
    """Decide flags and pins for ``precision`` (fp32|fp16|int8) on TensorRT ``feats``;
    ``int8_mode``: ``qdq`` (explicit, from Q/DQ nodes) or ``legacy`` (implicit, calibrated)."""
    if precision not in ("fp32", "fp16", "int8"):
        raise InputError(f"precision {precision!r}: use fp32, fp16 or int8")
    if precision == "int8" and int8_mode == "legacy":
        return legacy_int8_plan(model, feats)
    fp16_graph = TensorProto.FLOAT16 in graph_float_types(model)
    qdq = has_qdq(model)
    islands = island_nodes(model)
    net: list[str] = []
    if feats.explicit_batch_flag and feats.version < (10,):
        net.append("EXPLICIT_BATCH")  # required by 8.x ONNX parsing; deprecated/ignored in 10
    if precision == "int8" and not qdq:
        raise InputError(INT8_NEEDS_QDQ)
    if precision == "fp16" and not fp16_graph and not feats.weak_typing:
        raise InputError(
            f"TensorRT {'.'.join(map(str, feats.version))} builds strongly typed networks only; "
            "FP16 needs the FP16 graph: hmrt export --precision fp16 (or build_engine from the "
            "model, which exports it)"
        )
    if precision == "fp32" and fp16_graph:
        raise InputError("this ONNX is an FP16 graph; build it with --fp16")
    can_strong = feats.strongly_typed_flag or not feats.weak_typing
    if not feats.weak_typing:
        strong = True  # TensorRT 11: every network is strongly typed
    elif precision == "fp16":
        strong = fp16_graph and can_strong
    elif precision == "int8":
        strong = can_strong
    else:
        strong = False
    plan = PrecisionPlan(precision, strong, islands=islands)
    if strong:
        if feats.strongly_typed_flag:
            net.append("STRONGLY_TYPED")  # 10.x opt-in; accepted and ignored by 11.x
        plan.network_flags = net
        return plan
    plan.network_flags = net
    if precision == "fp16":
        plan.builder_flags = ["FP16", "OBEY_PRECISION_CONSTRAINTS"]
    elif precision == "int8":
        plan.builder_flags = ["INT8", "FP16", "OBEY_PRECISION_CONSTRAINTS"]
    if precision != "fp32":
        plan.pinned_nodes = float_island_nodes(model)
    return plan


def legacy_int8_plan(model: onnx.ModelProto, feats: TrtFeatures) -> PrecisionPlan:
    """Implicit INT8: weakly typed, INT8 + FP16 flags, FP32 islands pinned, a calibrator."""
    version = ".".join(map(str, feats.version))
    if has_qdq(model):
        raise InputError(
            "this ONNX already has Q/DQ nodes (explicit quantization), which take precedence "
            "over a calibrator: build it with --int8-mode qdq"
        )
    if TensorProto.FLOAT16 in graph_float_types(model):
        raise InputError("legacy INT8 calibrates the FP32 graph; this ONNX is an FP16 graph")
    if not feats.implicit_int8:
        raise InputError(
            f"TensorRT {version} has no implicit INT8 calibration (IInt8EntropyCalibrator2 and "
            "the INT8 builder flag were removed in TensorRT 11); build from a Q/DQ graph with "
            "--int8-mode qdq"
        )
    net = ["EXPLICIT_BATCH"] if feats.explicit_batch_flag and feats.version < (10,) else []
    return PrecisionPlan(
        "int8",
        False,
        network_flags=net,
        builder_flags=["INT8", "FP16", "OBEY_PRECISION_CONSTRAINTS"],
        pinned_nodes=float_island_nodes(model),
        islands=island_nodes(model),
        int8_calibration=True,
    )
