"""Which ONNX nodes cannot run on a DLA core, decided from the graph alone (no TensorRT needed).

``build_engine.py --dla N`` puts every other layer on the DLA and these on the GPU explicitly
(``config.set_device_type(layer, trt.DeviceType.GPU)``, :mod:`hmrt.export.trt_build`) instead of
relying on the silent GPU fallback; the audit (:func:`hmrt.export.audit.audit` with ``dla=True``)
lists them with the reason. Rules, from NVIDIA's "DLA Supported Layers and Restrictions" page
and the TensorRT operator docs (shared/research/tensorrt.md, DLA):

* FP32 islands: DLA runs FP16 and INT8 only, and island layers are float32 by contract;
* a non-batch dimension larger than 8192 on any activation ("the maximum supported size for
  non-batch dimensions is 8192");
* Softmax over an axis longer than 8192, or longer than 1024 when another non-batch dimension
  is larger than 1 (ISoftMaxLayer's DLA constraints);
* a reduction over more than 8192 elements per output (hmrt's conservative rule, not a
  documented limit: DLA reduces only MAX, with each dimension at most 8192; a reduction as large
  as the HEMlets head's 262,144 voxels is kept off the DLA rather than trusted to it).
"""

from __future__ import annotations

import math

import onnx
from onnx import numpy_helper

from hmrt.runtime.graph_islands import island_of

DLA_MAX_DIM = 8192
"""Largest non-batch dimension (and reduction / softmax extent) hmrt places on the DLA."""
DLA_SOFTMAX_MAX_SHARED = 1024
"""Softmax axis limit when another non-batch dimension is larger than 1."""
REDUCE_OPS = (
    "ReduceSum",
    "ReduceMax",
    "ReduceMin",
    "ReduceMean",
    "ReduceProd",
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceSumSquare",
)


def _shapes(model: onnx.ModelProto) -> dict[str, list[int | None]]:
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:
        inferred = model
    g = inferred.graph
    out: dict[str, list[int | None]] = {}
    for v in [*g.value_info, *g.input, *g.output]:
        if v.type.tensor_type.HasField("shape"):
            dims = v.type.tensor_type.shape.dim
            out[v.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    return out


def _constants(model: onnx.ModelProto) -> dict[str, list[int]]:
    """Integer constants (Reduce axes inputs) by tensor name."""
    found: dict[str, list[int]] = {}
    for t in model.graph.initializer:
        if t.data_type in (onnx.TensorProto.INT64, onnx.TensorProto.INT32):
            found[t.name] = [int(v) for v in numpy_helper.to_array(t).reshape(-1)]
    for n in model.graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            arr = numpy_helper.to_array(n.attribute[0].t)
            if arr.dtype.kind in "iu":
                found[n.output[0]] = [int(v) for v in arr.reshape(-1)]
    return found


def _attr(node: onnx.NodeProto, name: str, default):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _reduce_extent(
    node: onnx.NodeProto, dims: list[int | None], consts: dict[str, list[int]]
) -> int | None:
    """Elements reduced into each output value, or None when axes or sizes are unknown."""
    axes = _attr(node, "axes", None)
    if axes is None and len(node.input) > 1 and node.input[1]:
        axes = consts.get(node.input[1])
        if axes is None:
            return None
    if not axes:
        if _attr(node, "noop_with_empty_axes", 0):
            return 1
        axes = list(range(len(dims)))
    sizes = [dims[a % len(dims)] for a in axes]
    return None if any(s is None for s in sizes) else math.prod(sizes)


def node_reason(
    node: onnx.NodeProto,
    shapes: dict[str, list[int | None]],
    consts: dict[str, list[int]],
    initializers: set[str],
) -> str | None:
    """Why ``node`` cannot run on the DLA (size and op rules, not islands), or None."""
    first = shapes.get(node.input[0]) if node.input else None
    if node.op_type == "Softmax" and first:
        axis = _attr(node, "axis", -1) % len(first)
        size = first[axis]
        others = [d for i, d in enumerate(first) if i not in (0, axis)]
        limit = DLA_SOFTMAX_MAX_SHARED if any(d is None or d > 1 for d in others) else DLA_MAX_DIM
        if size is not None and size > limit:
            return f"Softmax over an axis of {size} (DLA: at most {limit})"
    if node.op_type in REDUCE_OPS and first:
        extent = _reduce_extent(node, first, consts)
        if extent is not None and extent > DLA_MAX_DIM:
            return f"{node.op_type} over {extent} elements (hmrt keeps > {DLA_MAX_DIM} on the GPU)"
    for name in [*node.input, *node.output]:
        dims = shapes.get(name) if name and name not in initializers else None
        big = [d for d in (dims or [])[1:] if d is not None and d > DLA_MAX_DIM]
        if big:
            return f"tensor '{name}' has a dimension of {big[0]} (DLA: at most {DLA_MAX_DIM})"
    return None


def size_reasons(model: onnx.ModelProto) -> dict[str, str]:
    """``{node name: reason}`` for the nodes breaking a DLA size or op rule (islands aside)."""
    shapes = _shapes(model)
    consts = _constants(model)
    inits = {t.name for t in model.graph.initializer}
    found: dict[str, str] = {}
    for node in model.graph.node:
        if node.op_type == "Constant" or not node.name:
            continue
        reason = node_reason(node, shapes, consts, inits)
        if reason:
            found[node.name] = reason
    return found


def island_reason(island: str) -> str:
    """The reason every layer of FP32 island ``island`` stays on the GPU."""
    return f"in FP32 island '{island}' (DLA runs FP16/INT8 only)"


def dla_gpu_nodes(model: onnx.ModelProto) -> dict[str, str]:
    """``{node name: reason}`` for every node that must stay on the GPU in a ``--dla`` build."""
    found = size_reasons(model)
    for node in model.graph.node:
        island = island_of(node.name)
        if island is not None and node.op_type != "Constant":
            size = found.get(node.name)
            found[node.name] = island_reason(island) + (f"; {size}" if size else "")
    return found


def gpu_layer_reason(layer_name: str, gpu_nodes: dict[str, str]) -> str | None:
    """Why a TensorRT layer (named after its ONNX node) must run on the GPU, or None.

    Exact node names, plus every layer carrying an FP32-island tag: the ONNX parser may split a
    node into several layers, and those keep the tagged node name as their prefix.
    """
    if layer_name in gpu_nodes:
        return gpu_nodes[layer_name]
    island = island_of(layer_name)
    return island_reason(island) if island is not None else None
