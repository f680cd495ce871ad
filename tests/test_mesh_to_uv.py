"""Mesh -> UV location map (BoBW's UV_l, DecoMR's get_UV_map): the table, parity with the
project's rasterizer, and the ONNX export (opset 17, ONNX Runtime, TensorRT audit)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from body_helpers import random_rotmats
from onnx_helpers import export_and_run

from hmrt.export.audit import audit
from hmrt.runtime.body.model import BodyModel
from hmrt.runtime.render import location_map, uv_raster
from hmrt.train.losses.decomr import location_map_table
from hmrt.train.models.layers import MeshToUV, MeshToUVTable, mesh_to_uv_table

ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def body():
    return BodyModel(None)


@pytest.fixture(scope="module")
def posed(body):
    verts, _ = body.forward(random_rotmats(4, body.n_joints, seed=3))
    return verts.astype(np.float32)  # (4, V, 3), metres


def test_table_layout_and_cache(body):
    table = mesh_to_uv_table(body, 32)
    assert isinstance(table, MeshToUVTable) and table.uv_size == 32
    assert table.index.shape == (1024, 3) and table.index.dtype == np.int64
    assert table.bary.shape == (1024, 3) and table.bary.dtype == np.float32
    assert table.part.shape == (1024,) and table.part.dtype == np.int64
    assert table.coverage.shape == (32, 32) and table.coverage.dtype == np.float32
    on = table.coverage.reshape(-1) > 0
    assert 0 < on.sum() < on.size
    np.testing.assert_allclose(table.bary[on].sum(axis=1), 1.0, atol=1e-5)
    assert (table.bary[~on] == 0).all() and (table.index[~on] == 0).all()
    assert (table.part[~on] == 0).all() and (table.part[on] >= 1).all()
    assert (table.part[on] <= 24).all()
    assert mesh_to_uv_table(body, 32) is table  # cached
    assert mesh_to_uv_table(None, 32) is table  # same bundled body, same key
    with pytest.raises(ValueError):
        table.bary[0, 0] = 1.0  # read-only: shared through the cache


def test_decomr_location_map_table_delegates(body):
    table = mesh_to_uv_table(body, 32)
    index, bary, part = location_map_table(body, 32)
    for got, want in ((index, table.index), (bary, table.bary), (part, table.part)):
        assert got.dtype == want.dtype and np.array_equal(got, want)
        assert got.flags.writeable  # a copy: the loss may hand it to torch.from_numpy


@pytest.mark.parametrize("size", [64, 128])
def test_matches_runtime_location_map(body, posed, size):
    layer = MeshToUV(mesh_to_uv_table(body, size))
    got = layer(torch.from_numpy(posed)).numpy()
    raster = uv_raster(body.cont_vt, body.cont_ft, size)
    want = location_map(raster, body.faces, posed).transpose(0, 3, 1, 2)
    assert got.shape == (4, 3, size, size) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    off = mesh_to_uv_table(body, size).coverage == 0
    assert (got[:, :, off] == 0).all()


def test_constant_buffers_fp32_island_and_gradient(body, posed):
    layer = MeshToUV(mesh_to_uv_table(body, 16))
    assert layer.state_dict() == {}  # constants of the body, never in checkpoints
    half = torch.from_numpy(posed[:2]).half()
    out = layer(half)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, layer(half.float()))
    verts = torch.from_numpy(posed[:1]).requires_grad_(True)
    layer(verts).sum().backward()
    # d(sum of map)/d(vertex) = sum of its barycentric weights over the map, equal per coord.
    table = mesh_to_uv_table(body, 16)
    expect = np.bincount(table.index.reshape(-1), table.bary.reshape(-1), minlength=len(posed[0]))
    np.testing.assert_allclose(verts.grad[0].numpy(), np.repeat(expect[:, None], 3, 1), atol=1e-6)


def test_onnx_export_parity_and_ops(body, posed):
    layer = MeshToUV(mesh_to_uv_table(body, 64))
    graph, runs = export_and_run(layer, (torch.from_numpy(posed[:2]),))
    for n, ((got,), (want,)) in runs.items():
        assert got.shape == (n, 3, 64, 64)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    ops = {node.op_type for node in graph.graph.node}
    assert {"Gather", "Mul", "ReduceSum"} <= ops
    assert not ops & {"ScatterND", "ScatterElements", "NonZero", "GatherND", "Loop", "If"}
    assert not audit(graph, "10").errors and not audit(graph, "8.6").errors
