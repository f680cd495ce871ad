"""The FP16 graph: FP16 everywhere except the FP32 islands, explicit Casts at the boundaries.

This is what a strongly typed TensorRT build consumes (TensorRT 11 has no FP16 builder flag:
precision comes from the graph's dtypes). Island nodes are the ones tagged by
:mod:`hmrt.export.islands` from the model's own ``Fp32Module`` declaration; nothing is guessed
from op types. Graph inputs and outputs stay float32, so the runtime feeds and reads the same
arrays as for the FP32 graph. Written here (not onnxconverter-common / ModelOpt AutoCast) to keep
opset 13..17 and the exact island boundaries (ModelOpt forces opset >= 19).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from hmrt.runtime.graph_islands import island_of

F32, F16 = TensorProto.FLOAT, TensorProto.FLOAT16
FP16_MAX = 65504.0
# Inputs that keep float32 whatever the node's precision (ONNX type constraints).
KEEP_FP32_INPUTS = {"Resize": (1, 2)}
# Ops that only move data: they stay float32 when all their float inputs are float32, so a
# reshape between two islands (or before an output) does not round to FP16 for nothing.
MOVE_OPS = {
    "Reshape",
    "Transpose",
    "Squeeze",
    "Unsqueeze",
    "Flatten",
    "Identity",
    "Slice",
    "Gather",
    "Concat",
    "Expand",
    "Split",
    "Tile",
}


def _tensor_types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    g = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*g.value_info, *g.input, *g.output]}
    types.update({t.name: t.data_type for t in g.initializer})
    return types


def _to_fp16_array(array: np.ndarray) -> np.ndarray:
    return np.clip(array, -FP16_MAX, FP16_MAX).astype(np.float16)


def convert_to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """Return a mixed-precision copy of ``model`` (FP32 islands, FP16 elsewhere, FP32 I/O)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    g = model.graph
    types = _tensor_types(model)
    in_island = {n.name: island_of(n.name) is not None for n in g.node}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    # Float32 initializers: FP16 when only FP16 nodes read them, an FP16 copy when both do.
    dtype: dict[str, int] = {i.name: i.type.tensor_type.elem_type for i in g.input}
    fp16_copy: dict[str, str] = {}
    new_inits = []
    for init in g.initializer:
        dtype[init.name] = init.data_type
        if init.data_type != F32:
            continue
        users = consumers.get(init.name, [])
        fp16_users = [u for u in users if not in_island[u.name]]
        if not fp16_users:
            continue
        half = numpy_helper.from_array(_to_fp16_array(numpy_helper.to_array(init)), init.name)
        if len(fp16_users) == len(users):
            init.CopyFrom(half)
            dtype[init.name] = F16
        else:
            half.name = f"{init.name}__fp16"
            new_inits.append(half)
            fp16_copy[init.name] = half.name
    g.initializer.extend(new_inits)

    nodes: list[onnx.NodeProto] = []
    casts: dict[tuple[str, int], str] = {}

    def cast(name: str, to: int) -> str:
        key = (name, to)
        if key not in casts:
            out = f"{name}__to_{'fp32' if to == F32 else 'fp16'}"
            nodes.append(helper.make_node("Cast", [name], [out], to=to, name=f"Cast_{out}"))
            casts[key] = out
            dtype[out] = to
        return casts[key]

    for node in g.node:
        island = in_island[node.name]
        if not island and node.op_type in MOVE_OPS:
            float_in = [dtype.get(i, types.get(i)) for i in node.input if i]
            float_in = [t for t in float_in if t in (F32, F16)]
            island = bool(float_in) and all(t == F32 for t in float_in)
        want = F32 if island else F16
        keep = KEEP_FP32_INPUTS.get(node.op_type, ())
        for idx, name in enumerate(node.input):
            if not name:
                continue
            target = F32 if idx in keep else want
            have = dtype.get(name, types.get(name))
            if have == F32 and target == F16 and name in fp16_copy:
                node.input[idx] = fp16_copy[name]
            elif have in (F32, F16) and have != target:
                node.input[idx] = cast(name, target)
        if not island:
            _retype_attributes(node)
        for out in node.output:
            t = types.get(out)
            if node.op_type == "Cast":
                t = helper.get_attribute_value(node.attribute[0])
            elif t in (F32, F16):
                t = want
            dtype[out] = t
        nodes.append(node)

    # Graph outputs stay float32.
    for out in g.output:
        if dtype.get(out.name) == F16:
            inner = f"{out.name}__fp16"
            for n in nodes:
                n.output[:] = [inner if o == out.name else o for o in n.output]
                n.input[:] = [inner if i == out.name else i for i in n.input]
            nodes.append(
                helper.make_node(
                    "Cast", [inner], [out.name], to=F32, name=f"Cast_{out.name}_to_fp32"
                )
            )
    del g.node[:]
    g.node.extend(nodes)
    del g.value_info[:]
    return onnx.shape_inference.infer_shapes(model)


def _retype_attributes(node: onnx.NodeProto) -> None:
    """Float32 constants and casts inside FP16 regions become FP16."""
    for attr in node.attribute:
        if node.op_type == "Cast" and attr.name == "to" and attr.i == F32:
            attr.i = F16
        elif (
            attr.type == onnx.AttributeProto.TENSOR
            and attr.t.data_type == F32
            and (node.op_type in ("Constant", "ConstantOfShape"))
        ):
            arr = numpy_helper.to_array(attr.t)
            attr.t.CopyFrom(numpy_helper.from_array(_to_fp16_array(arr), attr.t.name))
