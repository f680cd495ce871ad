"""The FP16 graph: FP16 outside the declared FP32 islands, Casts at the boundaries, FP32 I/O."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from export_toy import toy_model
from onnx import TensorProto

from hmrt.export.onnx_export import ExportOptions, export_model
from hmrt.export.parity import max_abs_diff, ort_outputs, torch_outputs
from hmrt.runtime.graph_islands import island_of


@pytest.fixture(scope="module")
def fp16(tmp_path_factory):
    out = tmp_path_factory.mktemp("fp16")
    toy = toy_model()
    result = export_model(toy, out / "toy_fp16.onnx", "toy", "edge",
                          ExportOptions(precision="fp16", trt_version="11"))  # fmt: skip
    return toy, result


def _types(model):
    g = onnx.shape_inference.infer_shapes(model).graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*g.value_info, *g.input, *g.output]}
    types.update({t.name: t.data_type for t in g.initializer})
    return g, types


def test_islands_fp32_rest_fp16_io_fp32(fp16):
    _, result = fp16
    model = onnx.load(str(result.path))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["hmrt.precision"] == "fp16"
    g, types = _types(model)
    assert all(types[v.name] == TensorProto.FLOAT for v in [*g.input, *g.output])
    floats = (TensorProto.FLOAT, TensorProto.FLOAT16)
    island_types, other_types = set(), set()
    for node in g.node:
        outs = {types.get(o) for o in node.output} & set(floats)
        if island_of(node.name):
            island_types |= outs
        elif node.op_type in ("Conv", "Gemm"):
            other_types |= outs
    assert island_types == {TensorProto.FLOAT}
    assert other_types == {TensorProto.FLOAT16}
    conv_weights = [types[n.input[1]] for n in g.node if n.op_type == "Conv"]
    assert set(conv_weights) == {TensorProto.FLOAT16}
    casts = [n for n in g.node if n.op_type == "Cast"]
    to = {onnx.helper.get_attribute_value(c.attribute[0]) for c in casts}
    assert to == {TensorProto.FLOAT, TensorProto.FLOAT16}
    onnx.checker.check_model(model, full_check=True)


def test_fp16_graph_runs_in_ort_close_to_fp32(fp16):
    toy, result = fp16
    images = torch.randn(8, 3, 64, 64, generator=torch.Generator().manual_seed(5)).numpy()
    diff = max_abs_diff(torch_outputs(toy, images, 4), ort_outputs(result.path, images, 4))
    # ORT CPU runs most FP16 nodes in FP32 on FP16-rounded weights and inputs (no FP16 CPU
    # kernels); this bounds the graph's own rounding, not a GPU FP16 engine's.
    assert diff["vertices"] < 2e-3 and np.isfinite(list(diff.values())).all()
    assert diff["vertices"] > 0.0  # it really is a different (rounded) graph
