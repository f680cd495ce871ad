"""DaNet's constant tables and graph matrices against the rows listed in seed-danet.md §1.9."""

from __future__ import annotations

import itertools

import numpy as np
import torch

from hmrt.train.models.danet import tables

# seed-danet.md §1.9, step 1: ancestors of each joint (row-normalised; root row all zeros).
R2P_ROWS = {
    1: {0}, 2: {0}, 3: {0}, 4: {0, 1}, 5: {0, 2}, 6: {0, 3}, 7: {0, 1, 4}, 8: {0, 2, 5},
    9: {0, 3, 6}, 10: {0, 1, 4, 7}, 11: {0, 2, 5, 8}, 12: {0, 3, 6, 9}, 13: {0, 3, 6, 9},
    14: {0, 3, 6, 9}, 15: {0, 3, 6, 9, 12}, 16: {0, 3, 6, 9, 13}, 17: {0, 3, 6, 9, 14},
    18: {0, 3, 6, 9, 13, 16}, 19: {0, 3, 6, 9, 14, 17}, 20: {0, 3, 6, 9, 13, 16, 18},
    21: {0, 3, 6, 9, 14, 17, 19}, 22: {0, 3, 6, 9, 13, 16, 18, 20},
    23: {0, 3, 6, 9, 14, 17, 19, 21},
}  # fmt: skip


def _support(row: np.ndarray) -> set[int]:
    return {int(i) for i in np.flatnonzero(row)}


def test_r2p_rows_are_ancestors_row_normalised():
    a = tables.r2p_adjacency()
    assert not a[0].any()
    for i, expected in R2P_ROWS.items():
        assert _support(a[i]) == expected
        np.testing.assert_allclose(a[i][list(expected)], 1.0 / len(expected), rtol=1e-6)


def test_p2r_rows_are_self_parent_children():
    a = tables.p2r_adjacency()
    assert _support(a[0]) == {0, 1, 2, 3}
    assert _support(a[9]) == {6, 9, 12, 13, 14}
    for leaf in (10, 11, 15, 22, 23):
        assert _support(a[leaf]) == {leaf, tables.PARENTS[leaf]}
    for i in set(range(24)) - {0, 9, 10, 11, 15, 22, 23}:
        assert len(_support(a[i])) == 3 and i in _support(a[i])
    np.testing.assert_allclose(a.sum(axis=1), 1.0, rtol=1e-6)


def _tree_distance() -> np.ndarray:
    d = np.full((24, 24), 99)
    np.fill_diagonal(d, 0)
    for i in range(1, 24):
        d[i, tables.PARENTS[i]] = d[tables.PARENTS[i], i] = 1
    for k, i, j in itertools.product(range(24), repeat=3):  # Floyd-Warshall
        d[i, j] = min(d[i, j], d[i, k] + d[k, j])
    return d


def test_refine_edges_are_distance_two_plus_neck_shoulders():
    d = _tree_distance()
    near = {(i, j) for i in range(24) for j in range(i + 1, 24) if d[i, j] <= 2}
    assert len(near) == 49
    assert set(tables.REFINE_EDGES) == near | {(12, 16), (12, 17)}
    assert len(tables.REFINE_EDGES) == 51
    m = tables.refine_mask()
    assert (m == m.T).all() and m.sum() == 102 and not np.diag(m).any()


def test_refine_adjacency_is_column_degree_normalised():
    from hmrt.train.models.danet.config import DaNetConfig
    from hmrt.train.models.danet.regressor import DecomposedRegressor

    reg = DecomposedRegressor(DaNetConfig.edge())
    with torch.no_grad():
        reg.edge_importance.copy_(torch.rand(1, 24, 24, generator=torch.Generator().manual_seed(0)))
        reg.edge_importance[0, 3, 5] = -1.0  # relu clips it; not an edge of the mask anyway
        ours = reg.refine_adjacency().numpy()
    e = np.maximum(reg.edge_importance[0].detach().numpy(), 0)
    a = np.eye(24) + tables.refine_mask() * e  # not symmetric: E is not constrained
    dn = np.diag(a.sum(axis=0) ** -0.5)  # official normalize_undigraph: column sums
    np.testing.assert_allclose(ours, dn @ a @ dn, rtol=1e-5, atol=1e-7)


def test_part_tables_are_consistent():
    table = tables.partial_part_table()
    own = tables.own_part_matrix()
    assert table.shape == (24, 7) and (table[:, 0] == 0).all()
    assert own.shape == (24, 25) and not own[:, 0].any()
    for joint in range(24):
        assert set(np.flatnonzero(own[joint])) == set(tables.SMPL2DP_PART[joint])
        # A joint's own parts (hidden test) are among its partial-IUV channels.
        assert set(tables.SMPL2DP_PART[joint]) <= set(table[joint, 1:])
