"""BoBW's UV part assignment A_uv (paper App. B) and the part average / distribution layers:
one part per texel, left/right symmetry, masked means without NaN, ONNX Runtime parity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from onnx_helpers import export_and_run

from hmrt.export.audit import audit
from hmrt.runtime.body.model import BodyModel
from hmrt.runtime.errors import InputError
from hmrt.train.models.bobw.joints import LSP14_FLIP, lsp14_regressor
from hmrt.train.models.layers import (
    PartAverage,
    PartDistribute,
    mesh_to_uv_table,
    uv_part_assignment,
)
from hmrt.train.models.layers.uv_parts import vertex_part_weights

ort = pytest.importorskip("onnxruntime")
FLIP = np.array(LSP14_FLIP)


@pytest.fixture(scope="module")
def body():
    return BodyModel(None)


@pytest.fixture(scope="module")
def regressor(body):
    return lsp14_regressor(body)


@pytest.fixture(scope="module")
def assign64(body, regressor):
    return uv_part_assignment(body, 64, regressor, LSP14_FLIP)


def reference_part_average(uv_map, assign, valid):
    """Per-part, per-sample loop in float64."""
    n, c = uv_map.shape[:2]
    k = assign.shape[0]
    joints, visible = np.zeros((n, k, c)), np.zeros((n, k))
    for b in range(n):
        for j in range(k):
            sel = (assign[j] > 0) & (valid[b, 0] > 0)
            if sel.any():
                joints[b, j] = uv_map[b][:, sel].astype(np.float64).mean(axis=1)
                visible[b, j] = 1.0
    return joints, visible


def random_valid(n, s, seed, occluded_part=None, assign=None):
    valid = (torch.rand(n, 1, s, s, generator=torch.Generator().manual_seed(seed)) > 0.4).float()
    if occluded_part is not None:
        valid[0, 0][torch.from_numpy(assign[occluded_part] > 0)] = 0.0
    return valid


def test_vertex_assignment_is_symmetric(body, regressor):
    weights = vertex_part_weights(body, regressor, LSP14_FLIP)
    flip_vertex = np.asarray(body.flip_vertex)
    assert weights.shape == (body.n_verts, 14)
    np.testing.assert_array_equal(weights.sum(axis=1), 1.0)
    np.testing.assert_array_equal(weights[flip_vertex][:, FLIP], weights)  # exact
    split = weights.max(axis=1) < 1.0  # ties between a joint and its mirror: plane vertices
    assert (flip_vertex[split] == np.flatnonzero(split)).all()
    joints = regressor @ body.v_template.astype(np.float64)
    dist = np.linalg.norm(body.v_template[:, None] - joints[None], axis=-1)
    one = ~split  # off the ties, mirror-averaging changes no vertex's nearest joint
    np.testing.assert_array_equal(weights[one].argmax(axis=1), dist[one].argmin(axis=1))


@pytest.mark.parametrize("size", [64, 128])
def test_assignment_partitions_the_chart_symmetrically(body, regressor, size):
    assign = uv_part_assignment(body, size, regressor, LSP14_FLIP)
    cover = mesh_to_uv_table(body, size).coverage
    assert assign.shape == (14, size, size) and assign.dtype == np.float32
    assert set(np.unique(assign)) <= {0.0, 1.0}
    np.testing.assert_array_equal(assign.sum(axis=0), cover)  # one part on, none off the chart
    assert (assign.sum(axis=(1, 2)) > 0).all()  # every LSP part has texels
    # The bundled chart is mirror-symmetric about u = 0.5, and so is A_uv.
    np.testing.assert_array_equal(cover, cover[:, ::-1])
    np.testing.assert_array_equal(assign, assign[FLIP][:, :, ::-1])


def test_assignment_follows_the_vertices(body, regressor, assign64):
    """A texel whose three corner vertices all belong to part k is in part k."""
    table = mesh_to_uv_table(body, 64)
    weights = vertex_part_weights(body, regressor, LSP14_FLIP)
    corner = weights[table.index].argmax(axis=-1)  # (S*S, 3)
    pure = (table.coverage.reshape(-1) > 0) & (corner == corner[:, :1]).all(axis=1)
    pure &= (weights[table.index].max(axis=-1) == 1.0).all(axis=1)
    assert pure.sum() > 1000
    flat = assign64.reshape(14, -1)
    np.testing.assert_array_equal(flat[:, pure].argmax(axis=0), corner[pure, 0])


def test_bad_flip_is_an_input_error(body, regressor):
    with pytest.raises(InputError, match="permutation"):
        uv_part_assignment(body, 16, regressor, [*range(13), 12])
    with pytest.raises(InputError, match="own inverse"):
        uv_part_assignment(body, 16, regressor, [*range(1, 14), 0])


def test_part_average_matches_loop_and_handles_occlusion(assign64):
    layer = PartAverage(assign64)
    assert layer.state_dict() == {}
    uv_map = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    valid = random_valid(3, 64, seed=1, occluded_part=7, assign=assign64)
    valid[2] = 0.0  # a fully occluded sample
    joints, visible = layer(uv_map, valid)
    ref_j, ref_v = reference_part_average(uv_map.numpy(), assign64, valid.numpy())
    assert joints.shape == (3, 14, 3) and visible.shape == (3, 14)
    assert joints.dtype == visible.dtype == torch.float32
    np.testing.assert_allclose(joints.numpy(), ref_j, atol=1e-5)
    np.testing.assert_array_equal(visible.numpy(), ref_v)
    assert visible[0, 7] == 0 and (joints[0, 7] == 0).all() and visible[0].sum() == 13
    assert (visible[2] == 0).all() and (joints[2] == 0).all() and torch.isfinite(joints).all()
    # No mask: every texel of the part (off-chart texels belong to no part).
    j_all, v_all = layer(uv_map)
    j_one, v_one = layer(uv_map, torch.ones(3, 1, 64, 64))
    torch.testing.assert_close(j_all, j_one)
    torch.testing.assert_close(v_all, v_one)


def test_part_average_half_input_runs_in_fp32(assign64):
    layer = PartAverage(assign64)
    uv_map = (torch.randn(2, 3, 64, 64) * 2.0).half()
    valid = random_valid(2, 64, seed=2).half()
    valid[1] = 0.0
    joints, visible = layer(uv_map, valid)
    assert joints.dtype == visible.dtype == torch.float32
    want_j, want_v = layer(uv_map.float(), valid.float())
    torch.testing.assert_close(joints, want_j)
    torch.testing.assert_close(visible, want_v)
    assert torch.isfinite(joints).all() and (joints[1] == 0).all() and (visible[1] == 0).all()


def test_part_distribute_and_round_trip(body, assign64):
    distribute, average = PartDistribute(assign64), PartAverage(assign64)
    assert distribute.state_dict() == {}
    cover = torch.tensor(mesh_to_uv_table(body, 64).coverage).reshape(1, 1, 64, 64)
    # Dyadic joints (exact sums in float32): the round trip is exact.
    gen = torch.Generator().manual_seed(4)
    joints = torch.randint(-512, 512, (2, 14, 3), generator=gen).float() / 256.0
    uv_j = distribute(joints)
    assert uv_j.shape == (2, 3, 64, 64)
    assert (uv_j[:, :, cover[0, 0] == 0] == 0).all()
    k, r, c = np.argwhere(assign64 > 0)[123]
    assert torch.equal(uv_j[:, :, r, c], joints[:, k])
    back, visible = average(uv_j, cover.expand(2, -1, -1, -1))
    assert torch.equal(back, joints) and (visible == 1).all()
    # Any joints: equal to float32 rounding of the mean of identical values.
    joints = torch.randn(2, 14, 3, generator=gen)
    back, _ = average(distribute(joints), cover.expand(2, -1, -1, -1))
    # float32 sums over a few hundred texels; their order depends on the thread count
    torch.testing.assert_close(back, joints, rtol=1e-5, atol=1e-5)


def _assert_runs_match(runs, atol):
    for n, (got, want) in runs.items():
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.shape[0] == n and g.shape == w.shape
            assert np.isfinite(g).all()
            np.testing.assert_allclose(g, w, rtol=0, atol=atol)


def _check_graph(graph):
    ops = {node.op_type for node in graph.graph.node}
    assert "MatMul" in ops
    assert not ops & {"ScatterND", "ScatterElements", "NonZero", "Einsum", "Loop", "If"}
    assert not audit(graph, "10").errors and not audit(graph, "8.6").errors


def test_part_average_onnx_parity(assign64):
    uv_map = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    valid = random_valid(4, 64, seed=6, occluded_part=3, assign=assign64)
    graph, runs = export_and_run(PartAverage(assign64), (uv_map[:2], valid[:2]))
    _check_graph(graph)
    _assert_runs_match(runs, 1e-6)
    # All-zero valid in ONNX Runtime: zeros and visible 0, no NaN.
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    joints, visible = session.run(None, {"in0": uv_map.numpy(), "in1": np.zeros((4, 1, 64, 64),
                                                                                np.float32)})  # fmt: skip
    assert (joints == 0).all() and (visible == 0).all()
    # Without a mask, and with float16 inputs (cast to float32 inside the graph).
    graph, runs = export_and_run(PartAverage(assign64), (uv_map[:2],))
    _check_graph(graph)
    _assert_runs_match(runs, 1e-6)
    graph, runs = export_and_run(PartAverage(assign64), (uv_map[:2].half(), valid[:2].half()))
    _check_graph(graph)
    _assert_runs_match(runs, 1e-6)
    assert runs[4][0][0].dtype == np.float32


def test_part_distribute_onnx_parity(assign64):
    joints = torch.randn(4, 14, 3, generator=torch.Generator().manual_seed(7))
    graph, runs = export_and_run(PartDistribute(assign64), (joints[:2],))
    _check_graph(graph)
    _assert_runs_match(runs, 1e-6)
