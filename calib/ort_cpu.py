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

The file ``hmrt calibrate`` writes stays the TensorRT form; this copy is for ONNX Runtime CPU
(the precision report's latency, or ``hmrt calibrate --cpu-copy``).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

U8_ZERO = "hmrt_u8_zero_point_128"


def uint8_activations(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Copy of ``model`` with int8/zero-point-0 activation Q/DQ turned into uint8/128.

    Weights (constant inputs) keep int8 (ORT's preferred U8S8 form). Returns the copy and the
    number of Q nodes converted.
    """
    out = onnx.ModelProto.FromString(model.SerializeToString())
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
    for node in g.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in converted_q:
            node.input[2] = U8_ZERO
    if converted_q:
        g.initializer.append(numpy_helper.from_array(np.array(128, np.uint8), U8_ZERO))
        read = {i for n in g.node for i in n.input}
        keep = [t for t in g.initializer if t.name in read]  # drop the old int8 zero points
        del g.initializer[:]
        g.initializer.extend(keep)
    return out, len(converted_q)


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
