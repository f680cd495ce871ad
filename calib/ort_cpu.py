"""The INT8 graph as ONNX Runtime's x86 CPU kernels want it: same numbers, uint8 activations.

TensorRT needs int8 activations with zero point 0. ORT's x86 CPU kernels (QLinearConv, ...)
take uint8 activations; ORT converts an int8 ``Q -> DQ`` pair itself (zero point ``z`` becomes
``z + 128``, an exact change of representation), but only when the Q feeds exactly one DQ
(``QDQS8ToU8Transformer``). A tensor read by two quantized nodes (every residual block, every
pair of convs sharing an input) keeps int8 and its convolutions stay float, so the int8 graph
runs *slower* than FP32 on a CPU. :func:`uint8_activations` applies the same exact conversion to
every activation ``Q -> DQ`` pair up front: the same scales and the same dequantized values, so
CPU latency measured on the converted copy is the latency of the TensorRT graph's quantization on
ORT's integer kernels. Outputs agree with the graph as written up to rare flipped int8 roundings:
ORT then accumulates every conv in integers (rounding the float bias to the accumulator grid)
where the graph as written ran some convs in float (``tests/test_int8_graph.py``; the precision
report measures the difference).

The TensorRT graph quantizes only the *inputs* of its quantized ops (TensorRT's placement:
Conv -> ReLU -> Q, which TensorRT fuses). ORT's QDQ fusions need the opposite: a ``Q`` right on
the weighted op's output (``DQ -> Conv -> Q`` becomes ``QLinearConv``). :func:`move_q_to_producers`
does for ORT what TensorRT's own Q/DQ propagation does inside the builder: where a ``Q`` reads a
ReLU/ReLU6/MaxPool/Reshape/Transpose/nearest-Resize chain that starts at a quantized op, it puts
a ``Q -> DQ`` with the same scale on every edge of the chain. Those ops commute with symmetric
rounding (``round`` is monotone; they only select or move values), so the dequantized values are
unchanged, and ReLU / ReLU6 whose upper bound is above the int8 range become
``LeakyRelu(alpha=0)``, which ORT runs as an int8 lookup table (``QLinearLeakyRelu``).

The file ``hmrt calibrate`` writes stays the TensorRT form; this copy is for ONNX Runtime CPU
(the precision report's latency, or ``hmrt calibrate --cpu-copy``).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

U8_ZERO = "hmrt_u8_zero_point_128"


QUANTIZED_PRODUCERS = ("Conv", "ConvTranspose", "Gemm", "MatMul", "Add")
"""Ops ORT fuses with a ``Q`` on their output when every input comes from a ``DQ``."""
COMMUTING_OPS = ("Relu", "Clip", "MaxPool", "Reshape", "Transpose", "Flatten", "Squeeze",
                 "Unsqueeze", "Resize")  # fmt: skip
"""Ops that commute with symmetric per-tensor quantization (Resize: mode nearest only)."""
ACTIVATIONS = ("Relu", "Clip")
MAX_CHAIN = 4


def _commutes(node: onnx.NodeProto) -> bool:
    if node.op_type not in COMMUTING_OPS:
        return False
    if node.op_type == "Resize":
        mode = next((a.s for a in node.attribute if a.name == "mode"), b"nearest")
        return mode == b"nearest"
    return True


def move_q_to_producers(model: onnx.ModelProto) -> int:
    """Quantize right at the quantized op's output where a ``Q`` reads it through commuting ops.

    For ``Conv -> Clip(0, 6) -> Q(s)`` this writes ``Conv -> Q(s) -> Clip_int8 -> (DQ ...)``:
    ReLU / ReLU6 become a Clip on the int8 codes (bounds ``round(lo / s)``, ``round(hi / s)``),
    which equals rounding the clipped value because rounding is monotone. Movement ops
    (MaxPool, Reshape, Transpose, nearest Resize) get ``Q -> DQ`` pairs with the same scale
    around them, which ORT runs in int8. Only single-reader chains are touched (no other reader
    sees a rounded tensor), and only producers whose inputs are all dequantized (the ops the
    graph quantizes). In place; returns how many chains were moved.
    """
    g = model.graph
    consts = _constants(model)
    producer = {o: n for n in g.node for o in n.output}
    readers: dict[str, int] = {}
    for n in g.node:
        for i in n.input:
            readers[i] = readers.get(i, 0) + 1
    for o in g.output:
        readers[o.name] = readers.get(o.name, 0) + 1

    def dequantized(node: onnx.NodeProto) -> bool:
        srcs = [producer.get(i) for i in node.input[:2] if i]
        return bool(srcs) and all(s is not None and s.op_type == "DequantizeLinear" for s in srcs)

    removed: set[int] = set()
    moved = 0
    for q in list(g.node):
        if q.op_type != "QuantizeLinear" or q.input[0] in consts or len(q.input) < 3:
            continue
        scale = _scalar(consts, q.input[1])
        chain: list[onnx.NodeProto] = []
        tensor = q.input[0]
        while len(chain) < MAX_CHAIN and readers.get(tensor) == 1:
            node = producer.get(tensor)
            if node is None or not _commutes(node):
                break
            chain.append(node)
            tensor = node.input[0]
        top = producer.get(tensor)
        if (not chain or scale is None or readers.get(tensor) != 1 or top is None
                or top.op_type not in QUANTIZED_PRODUCERS or not dequantized(top)):  # fmt: skip
            continue
        codes = None  # the int8 codes of the current tensor, once quantized
        for node in reversed(chain):  # from the producer down to the existing Q
            src = node.input[0]
            if codes is None:
                codes = f"{src}_hmrt_q"
                g.node.append(_qdq("QuantizeLinear", src, codes, q))
            if node.op_type in ACTIVATIONS:
                lo, hi = _clip_codes(node, consts, scale)
                name = f"{node.output[0]}_hmrt_codes"
                lo_name, hi_name = _int8_const(model, lo), _int8_const(model, hi)
                g.node.append(
                    onnx.helper.make_node("Clip", [codes, lo_name, hi_name], [name], name)
                )
                codes = name
                removed.add(id(node))
            else:
                dq = f"{src}_hmrt_dq"
                g.node.append(_qdq("DequantizeLinear", codes, dq, q))
                node.input[0] = dq
                codes = None
        if codes is not None:  # the chain ended in an activation: its codes replace q's output
            for n in g.node:
                n.input[:] = [codes if i == q.output[0] else i for i in n.input]
            removed.add(id(q))
        moved += 1
    kept = [n for n in g.node if id(n) not in removed]
    del g.node[:]
    available = {i.name for i in g.input} | {t.name for t in g.initializer}
    g.node.extend(_topological(kept, available))
    return moved


def _qdq(op: str, src: str, dst: str, like: onnx.NodeProto) -> onnx.NodeProto:
    return onnx.helper.make_node(op, [src, like.input[1], like.input[2]], [dst], dst + "_node")


def _clip_codes(node: onnx.NodeProto, consts: dict[str, np.ndarray], scale: float) -> tuple:
    """Int8 code bounds of a ReLU / Clip on the grid of ``scale`` (round half to even)."""
    lo, hi = 0.0, None
    if node.op_type == "Clip":
        lo = _scalar(consts, node.input[1]) if len(node.input) > 1 and node.input[1] else None
        hi = _scalar(consts, node.input[2]) if len(node.input) > 2 and node.input[2] else None
    lo_code = (
        -128
        if lo is None
        else int(np.clip(np.round(np.float32(lo) / np.float32(scale)), -128, 127))
    )
    hi_code = (
        127 if hi is None else int(np.clip(np.round(np.float32(hi) / np.float32(scale)), -128, 127))
    )
    return lo_code, hi_code


def _int8_const(model: onnx.ModelProto, value: int) -> str:
    name = f"hmrt_int8_code_{value}".replace("-", "m")
    if not any(t.name == name for t in model.graph.initializer):
        model.graph.initializer.append(numpy_helper.from_array(np.array(value, np.int8), name))
    return name


def _constants(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Initializers and Constant-node outputs by name (values as numpy arrays)."""
    out = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            out[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    return out


def _scalar(consts: dict[str, np.ndarray], name: str) -> float | None:
    value = consts.get(name)
    return float(value.reshape(-1)[0]) if value is not None and value.size == 1 else None


def _topological(nodes: list[onnx.NodeProto], available: set[str]) -> list[onnx.NodeProto]:
    """``nodes`` in an order where each reads only tensors written before it (stable)."""
    done = set(available) | {""}
    pending, ordered = list(nodes), []
    while pending:
        rest = []
        for n in pending:
            if all(i in done for i in n.input):
                ordered.append(n)
                done.update(n.output)
            else:
                rest.append(n)
        if len(rest) == len(pending):  # a cycle or a missing input: keep the rest as they are
            return ordered + rest
        pending = rest
    return ordered


def _uint8_const(model: onnx.ModelProto, code: int) -> str:
    name = f"hmrt_uint8_code_{code + 128}"
    if not any(t.name == name for t in model.graph.initializer):
        model.graph.initializer.append(
            numpy_helper.from_array(np.array(code + 128, np.uint8), name)
        )
    return name


def uint8_activations(
    model: onnx.ModelProto, propagate: bool = True
) -> tuple[onnx.ModelProto, int]:
    """Copy of ``model`` with int8/zero-point-0 activation Q/DQ turned into uint8/128.

    Weights (constant inputs) keep int8 (ORT's preferred U8S8 form). ``propagate`` first moves
    each ``Q`` up to its quantized producer (:func:`move_q_to_producers`). Returns the copy and
    the number of Q nodes converted.
    """
    out = onnx.ModelProto.FromString(model.SerializeToString())
    if propagate:
        move_q_to_producers(out)
    g = out.graph
    inits = {t.name: t for t in g.initializer}
    consts = set(inits) | {o for n in g.node if n.op_type == "Constant" for o in n.output}

    def int8_zero(name: str) -> bool:
        t = inits.get(name)
        if t is None or t.data_type != TensorProto.INT8:
            return False
        value = numpy_helper.to_array(t)
        return value.size == 1 and int(value.reshape(-1)[0]) == 0

    converted_q: set[str] = set()
    for node in g.node:
        if node.op_type != "QuantizeLinear" or node.input[0] in consts:
            continue
        if len(node.input) > 2 and int8_zero(node.input[2]):
            node.input[2] = U8_ZERO
            converted_q.add(node.output[0])
    n_converted = len(converted_q)
    for node in g.node:  # int8-code Clips after a converted Q: the same bounds + 128, uint8
        if node.op_type == "Clip" and node.input[0] in converted_q and len(node.input) == 3:
            for k in (1, 2):
                node.input[k] = _uint8_const(out, int(numpy_helper.to_array(inits[node.input[k]])))
            converted_q.add(node.output[0])
    for node in g.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in converted_q:
            node.input[2] = U8_ZERO
    if converted_q:
        g.initializer.append(numpy_helper.from_array(np.array(128, np.uint8), U8_ZERO))
        read = {i for n in g.node for i in n.input}
        keep = [t for t in g.initializer if t.name in read]  # drop the old int8 zero points
        del g.initializer[:]
        g.initializer.extend(keep)
    return out, n_converted


def optimized_op_counts(model: onnx.ModelProto, threads: int = 1) -> dict[str, int]:
    """Op types of the graph ONNX Runtime actually runs on the CPU (after its QDQ fusions)."""
    import collections
    import os
    import tempfile

    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="hmrt_ortopt_") as tmp:
        path = os.path.join(tmp, "optimized.onnx")
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.optimized_model_filepath = path
        so.log_severity_level = 3
        ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        ops = collections.Counter(n.op_type for n in onnx.load(path).graph.node)
    return dict(ops)
