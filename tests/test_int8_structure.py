"""Structure of the INT8 Q/DQ graph: the placement TensorRT fuses, and its ORT CPU form.

The TensorRT graph quantizes the *inputs* of its quantized ops only (TensorRT's Q/DQ placement
rules, shared/research/tensorrt.md section 5): DQ on both inputs of every quantized
Conv/Gemm/MatMul (activation and weight) and of every residual Add, one Q per tensor, every DQ
read by a quantized op (no ``Conv -> Q -> DQ -> Clip -> Q`` double rounding, no DQ -> Q pair),
nothing inside the FP32 islands, symmetric int8 (every zero point an int8 0). Its ONNX Runtime
CPU form (:func:`hmrt.calib.ort_cpu.uint8_activations`) moves each Q up to its producer the way
TensorRT's builder does, so ORT fuses the convolutions; the two compute the same values.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from calib_helpers import int8_graph, synth_crops
from onnx import TensorProto, numpy_helper

from hmrt.calib.ort_cpu import optimized_op_counts, uint8_activations
from hmrt.calib.qdq_plan import WEIGHTED_OPS
from hmrt.runtime.graph_islands import island_of

QDQ = ("QuantizeLinear", "DequantizeLinear")
QUANTIZED_OPS = (*WEIGHTED_OPS, "Add")


@pytest.fixture(scope="module")
def graph() -> onnx.ModelProto:
    path, _ = int8_graph()
    return onnx.load(str(path))


def _maps(model: onnx.ModelProto):
    producer = {o: n for n in model.graph.node for o in n.output}
    readers: dict[str, list[onnx.NodeProto]] = {}
    for n in model.graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    return producer, readers


def test_every_quantized_op_reads_dq_on_both_inputs(graph):
    producer, _ = _maps(graph)

    def from_dq(name: str) -> bool:
        src = producer.get(name)
        return src is not None and src.op_type == "DequantizeLinear"

    quantized = [
        n for n in graph.graph.node if n.op_type in QUANTIZED_OPS and any(map(from_dq, n.input))
    ]
    convs = [n for n in quantized if n.op_type == "Conv"]
    adds = [n for n in quantized if n.op_type == "Add"]
    assert len(convs) > 60 and len(adds) >= 10
    for node in quantized:
        assert from_dq(node.input[0]) and from_dq(node.input[1]), node.name
    # Weights: constant -> Q -> DQ, per output channel for convolutions.
    consts = {t.name for t in graph.graph.initializer}
    for conv in convs:
        weight_dq = producer[conv.input[1]]
        assert producer[weight_dq.input[0]].input[0] in consts, conv.name
        assert {a.name: a.i for a in weight_dq.attribute}.get("axis", 1) == 0, conv.name


def test_q_only_on_quantized_inputs_no_dangling_pairs(graph):
    producer, readers = _maps(graph)
    consts = {t.name for t in graph.graph.initializer}
    activation_qs = [
        n for n in graph.graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in consts
    ]
    seen: set[str] = set()
    for q in activation_qs:
        assert q.input[0] not in seen, f"{q.input[0]} quantized twice"
        seen.add(q.input[0])
        src = producer.get(q.input[0])
        assert src is None or src.op_type not in QDQ, f"DQ -> Q pair at {q.name}"
        assert readers[q.output[0]], f"{q.name} is read by nobody"
        assert all(r.op_type == "DequantizeLinear" for r in readers[q.output[0]]), q.name
    for dq in (n for n in graph.graph.node if n.op_type == "DequantizeLinear"):
        for reader in readers.get(dq.output[0], []):
            # every dequantized tensor goes straight into a quantized op: nothing in between
            # runs on a rounded value and is rounded again
            assert reader.op_type in QUANTIZED_OPS, (dq.name, reader.op_type, reader.name)
            assert island_of(reader.name) is None, reader.name


def test_no_qdq_inside_fp32_islands_and_symmetric_int8(graph):
    inits = {t.name: t for t in graph.graph.initializer}
    qdq = [n for n in graph.graph.node if n.op_type in QDQ]
    assert qdq and not [n.name for n in qdq if island_of(n.name) is not None]
    for n in qdq:
        zp = inits[n.input[2]]
        assert zp.data_type == TensorProto.INT8, n.name
        assert not numpy_helper.to_array(zp).any(), n.name  # symmetric: zero point 0
    dynamic = {i.name for i in graph.graph.input}  # tensors that depend on the image
    for n in graph.graph.node:  # nodes are in topological order
        if any(i in dynamic for i in n.input):
            dynamic.update(n.output)
    for dq in (n for n in qdq if n.op_type == "DequantizeLinear" and n.output[0] in dynamic):
        assert numpy_helper.to_array(inits[dq.input[1]]).size == 1, dq.name  # per tensor
    assert {o.domain: o.version for o in graph.opset_import}.get("", 0) == 17


def test_cpu_form_fuses_and_computes_the_same_values(graph):
    cpu, converted = uint8_activations(graph)
    assert converted > 50
    ops = optimized_op_counts(cpu)
    producer, _ = _maps(graph)
    quantized_convs = sum(
        1
        for n in graph.graph.node
        if n.op_type == "Conv"
        and getattr(producer.get(n.input[1]), "op_type", "") == "DequantizeLinear"
    )
    # ORT fuses every quantized conv whose output is re-quantized; the rest (IUV heads read by
    # ArgMax / the FP32 islands) run in float on dequantized inputs, as TensorRT's int8 conv with
    # a float output.
    assert ops["QLinearConv"] >= 60 and ops["QLinearConv"] <= quantized_convs
    assert ops.get("Conv", 0) + ops.get("FusedConv", 0) <= 10
    assert ops.get("QuantizeLinear", 0) <= 20  # no Q -> DQ -> float op -> Q churn left
    # Without ORT's fusions both graphs run the same float math on the same int8 codes.
    crops = synth_crops()[:2]
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    outs = [
        ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(
            None, {"image": crops}
        )
        for m in (graph, cpu)
    ]
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)
