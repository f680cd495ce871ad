"""The INT8 Q/DQ graph of DaNet-edge: Q/DQ only where intended, symmetric, opset 17, close to FP32
in ONNX Runtime on real synthetic crops, and int8 kernels on the CPU."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from calib_helpers import danet_edge_fp32, int8_graph, ort_outputs, synth_crops
from onnx import TensorProto, numpy_helper

from hmrt.calib.ort_cpu import optimized_op_counts, uint8_activations
from hmrt.calib.qdq import QuantizeOptions, quantize_to_qdq
from hmrt.calib.qdq_plan import final_heads
from hmrt.runtime.errors import InputError
from hmrt.runtime.graph_islands import island_of

QDQ = ("QuantizeLinear", "DequantizeLinear")


@pytest.fixture(scope="module")
def int8():
    path, cache = int8_graph()
    return onnx.load(str(path)), path, cache


def test_no_qdq_inside_islands_or_on_what_islands_and_heads_read(int8):
    model, _, _ = int8
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    assert not [n.name for n in g.node if n.op_type in QDQ and island_of(n.name)]
    heads = set(final_heads(onnx.load(str(danet_edge_fp32()))))
    assert len(heads) == 2
    float_readers = [n for n in g.node if island_of(n.name) or n.name in heads]
    for node in float_readers:
        for name in node.input:
            src = producer.get(name)
            assert src is None or src.op_type not in QDQ, (node.name, name)
    # ... while the backbone and streams really are quantized (weights and activations).
    convs = [n for n in g.node if n.op_type == "Conv" and not island_of(n.name)]
    quantized = [
        n for n in convs if all(producer[i].op_type == "DequantizeLinear" for i in n.input[:2])
    ]
    assert len(quantized) == len(convs) - 1  # all but the rotation head
    assert {n.op_type for n in g.node if n.op_type in QDQ} == set(QDQ)


def test_zero_points_are_zero_int8_and_weights_per_channel(int8):
    model, _, _ = int8
    inits = {t.name: t for t in model.graph.initializer}
    qdq = [n for n in model.graph.node if n.op_type in QDQ]
    assert len(qdq) > 300
    for n in qdq:
        zp = inits[n.input[2]]
        assert zp.data_type == TensorProto.INT8, n.name
        assert not numpy_helper.to_array(zp).any(), n.name  # symmetric: every zero point 0
    producer = {o: n for n in model.graph.node for o in n.output}
    for conv in (n for n in model.graph.node if n.op_type == "Conv" and not island_of(n.name)):
        dq = producer.get(conv.input[1])
        if dq is None or dq.op_type != "DequantizeLinear":
            continue
        out_channels = numpy_helper.to_array(inits[producer[dq.input[0]].input[0]]).shape[0]
        scale = numpy_helper.to_array(inits[dq.input[1]])
        axis = {a.name: a.i for a in dq.attribute}.get("axis", 1)
        assert scale.shape == (out_channels,) and axis == 0, conv.name
        assert conv.input[2] in inits and inits[conv.input[2]].data_type == TensorProto.FLOAT


def test_opset_17_metadata_and_checker(int8):
    model, _, _ = int8
    assert {o.domain: o.version for o in model.opset_import}.get("", 0) == 17
    meta = {p.key: p.value for p in model.metadata_props}
    src = {p.key: p.value for p in onnx.load(str(danet_edge_fp32())).metadata_props}
    assert meta["hmrt.precision"] == "int8" and meta["hmrt.int8_target"] == "tensorrt"
    assert meta["hmrt.int8_format"] == "qdq-symmetric-int8"
    for key in ("hmrt.model", "hmrt.input_size", "hmrt.mean", "hmrt.std", "hmrt.fp32_islands"):
        assert meta[key] == src[key]
    onnx.checker.check_model(model, full_check=True)


def test_runs_in_onnx_runtime_close_to_fp32_on_real_crops(int8):
    _, path, _ = int8
    crops = synth_crops(8, seed=7)  # other scenes than the calibration set
    ref = ort_outputs(danet_edge_fp32(), crops)
    out = ort_outputs(path, crops)
    dev = np.linalg.norm(out["vertices"] - ref["vertices"], axis=-1).max()
    assert 0.0 < dev < 0.02  # really quantized; within 2 cm of FP32 (random weights)
    assert np.abs(out["joints2d"] - ref["joints2d"]).max() < 5.0  # pixels
    assert all(np.isfinite(v).all() for v in out.values())


def test_cpu_form_keeps_the_quantization_and_runs_int8_kernels(int8):
    model, _, _ = int8
    cpu, converted = uint8_activations(model)
    assert converted > 100
    inits = {t.name: numpy_helper.to_array(t) for t in cpu.graph.initializer}
    for n in (n for n in cpu.graph.node if n.op_type in QDQ):
        zp = inits[n.input[2]]
        assert (zp.dtype == np.int8 and not zp.any()) or (
            zp.dtype == np.uint8 and (zp == 128).all()
        )
    # Same scales; only ORT's kernels differ (integer vs float accumulation), so outputs agree
    # up to rare flipped int8 roundings.
    crops = synth_crops()[:4]
    a, b = ort_outputs(model, crops), ort_outputs(cpu, crops)
    assert np.abs(a["vertices"] - b["vertices"]).max() < 1e-3
    as_written, cpu_ops = optimized_op_counts(model), optimized_op_counts(cpu)
    # ONNX Runtime fuses DQ -> Conv -> Q into QLinearConv; the graph as written quantizes conv
    # inputs only (TensorRT's placement), its CPU form moves the Qs up to the convs: nearly
    # every conv fuses (tests/test_int8_structure.py checks the placement itself).
    assert cpu_ops["QLinearConv"] > 60 and cpu_ops["QLinearConv"] > as_written.get("QLinearConv", 0)
    assert cpu_ops.get("Conv", 0) + cpu_ops.get("FusedConv", 0) <= 10


def test_onnxruntime_cpu_recipe_is_uint8_and_marked(int8, tmp_path):
    _, _, cache = int8
    out = tmp_path / "cpu.onnx"
    opts = QuantizeOptions(method="minmax", target="onnxruntime-cpu")
    quantize_to_qdq(danet_edge_fp32(), out, None, opts, "synth", cache, progress=False)
    model = onnx.load(str(out))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["hmrt.int8_target"] == "onnxruntime-cpu"
    inits = {t.name: t for t in model.graph.initializer}
    act_zps = {
        inits[n.input[2]].data_type
        for n in model.graph.node
        if n.op_type == "QuantizeLinear" and n.input[0] not in inits
    }
    assert act_zps == {TensorProto.UINT8}
    ops = optimized_op_counts(model)
    assert ops.get("Clip", 0) + ops.get("Relu", 0) < 5  # ReLU/ReLU6 folded into the convs
    from hmrt.export.int8_build import check_int8_for_tensorrt

    with pytest.raises(InputError, match="TensorRT rejects"):
        check_int8_for_tensorrt(model, out)


def test_range_cache_is_reused_only_for_the_same_graph_and_method(int8, tmp_path):
    _, path, cache = int8
    again = tmp_path / "again.onnx"
    quantize_to_qdq(danet_edge_fp32(), again, None, QuantizeOptions(method="minmax"), "synth",
                    cache, progress=False)  # fmt: skip
    assert again.read_bytes() == path.read_bytes()  # same ranges, same graph
    with pytest.raises(InputError, match="minmax ranges but --method entropy"):
        quantize_to_qdq(danet_edge_fp32(), tmp_path / "e.onnx", None,
                        QuantizeOptions(method="entropy"), "synth", cache,
                        progress=False)  # fmt: skip
    other = tmp_path / "other.onnx"
    other.write_bytes(danet_edge_fp32().read_bytes() + b"")
    m = onnx.load(str(other))
    m.doc_string = "changed"
    onnx.save(m, str(other))
    with pytest.raises(InputError, match="another ONNX file"):
        quantize_to_qdq(other, tmp_path / "o.onnx", None, QuantizeOptions(method="minmax"),
                        "synth", cache, progress=False)  # fmt: skip
    assert not (tmp_path / "e.onnx").exists() and not (tmp_path / "o.onnx").exists()
