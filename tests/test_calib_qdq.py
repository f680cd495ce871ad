"""What the INT8 plan leaves in float (islands, final heads, groups) and the range rules."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from calib_helpers import danet_edge_fp32

from hmrt.calib.qdq_plan import (
    final_heads,
    group_names,
    is_weighted,
    layer_group,
    make_plan,
)
from hmrt.calib.ranges import AbsHistogram, entropy_threshold, percentile_threshold
from hmrt.runtime.errors import InputError
from hmrt.runtime.graph_islands import island_of


@pytest.fixture(scope="module")
def graph():
    return onnx.load(str(danet_edge_fp32()))


def test_final_heads_are_the_rotation_head_and_the_camera_shape_fc(graph):
    heads = final_heads(graph)
    assert len(heads) == 2
    assert any("pose_regressors.1" in h and h.endswith("Conv") for h in heads)
    assert any("body_net" in h and "/fc/" in h and h.endswith("Gemm") for h in heads)


def test_every_weighted_danet_node_is_an_island_or_in_exactly_one_group(graph):
    consts = {t.name for t in graph.graph.initializer}
    weighted = [n for n in graph.graph.node if is_weighted(n, consts)]
    assert len(weighted) > 90
    for node in weighted:
        if island_of(node.name) is None:
            assert layer_group("danet", node.name) not in (None, "backbone.rest"), node.name
    groups = {layer_group("danet", n.name) for n in weighted if island_of(n.name) is None}
    assert groups == set(group_names("danet")) - {"backbone.rest"}


def test_plan_excludes_islands_heads_and_asked_groups(graph):
    plan = make_plan(graph, exclude_groups=("refinement",))
    islands = {n.name for n in graph.graph.node if island_of(n.name)}
    assert set(plan.islands) == islands and len(islands) > 100
    assert set(plan.heads) <= set(plan.nodes_to_exclude)
    assert all("gcn" in n for n in plan.excluded_groups["refinement"])
    only = make_plan(graph, only_groups=("local_streams",))
    kept = set(n.name for n in graph.graph.node) - set(only.nodes_to_exclude)
    assert kept and all(layer_group("danet", n) == "local_streams" for n in kept)
    with pytest.raises(InputError, match="unknown layer group"):
        make_plan(graph, exclude_groups=("decoder",))


def test_entropy_threshold_clips_outliers_and_keeps_compact_ranges():
    rng = np.random.default_rng(0)
    h = AbsHistogram()
    for _ in range(3):  # several batches: the histogram re-bins as the range grows
        h.add(np.concatenate([rng.standard_normal(40_000), 40.0 * rng.standard_normal(10)]))
    t = entropy_threshold(h)
    assert 2.5 < t < 10.0 < h.amax  # the rare +-40 outliers are clipped, the bulk is kept
    assert abs(h.counts.sum() - 3 * 40_010) == 0
    uniform = AbsHistogram()
    uniform.add(rng.uniform(-1, 1, 100_000))
    assert entropy_threshold(uniform) > 0.95  # nothing worth clipping
    assert percentile_threshold(uniform, 50.0) == pytest.approx(0.5, abs=0.01)
    zeros = AbsHistogram()
    zeros.add(np.zeros(100))
    assert entropy_threshold(zeros) == 0.0


# model -> (minimum weighted nodes, catch-all groups that no node may fall into)
_GROUP_CASES = {
    "hkmr": (40, {"backbone.rest", "regressor.rest"}),
    "hemlets": (20, {"backbone.rest"}),
}


@pytest.mark.parametrize("model_name", sorted(_GROUP_CASES))
@pytest.mark.parametrize("backbone", ["mobilenetv2", "resnet18"])
def test_every_weighted_node_is_an_island_or_in_exactly_one_group(tmp_path, model_name, backbone):
    """HKMR's and HEMlets' groups (per-group sensitivity and time split in the precision report)
    cover the backbone, whichever trunk, and every head (HKMR's unrolled regressor; HEMlets'
    branches and PoSh), with no node left to a catch-all group."""
    import torch

    from hmrt.export.onnx_export import ExportOptions, export_model
    from hmrt.train.models.registry import build

    minimum, catch_all = _GROUP_CASES[model_name]
    torch.manual_seed(0)
    model = build(model_name, "edge", backbone=backbone, backbone_width=0.5).eval()
    path = tmp_path / f"{model_name}.onnx"
    export_model(model, path, model_name, "edge", ExportOptions())
    graph = onnx.load(str(path))
    consts = {t.name for t in graph.graph.initializer}
    weighted = [n for n in graph.graph.node if is_weighted(n, consts)]
    assert len(weighted) > minimum
    groups = set()
    for node in weighted:
        if island_of(node.name) is None:
            group = layer_group(model_name, node.name)
            assert group is not None and group not in catch_all, node.name
            groups.add(group)
    assert groups == set(group_names(model_name)) - catch_all


@pytest.mark.parametrize("model_name", ["decomr", "bobw"])
def test_dense_models_groups_cover_every_weighted_node(tmp_path, model_name):
    """DecoMR's and BoBW's groups (the edge presets' MobileNetV2 encoder by stage, laterals,
    decoder, heads, the UV nets; BoBW's IK MLPs) leave no weighted node outside a group."""
    import torch

    from hmrt.export.onnx_export import ExportOptions, export_model
    from hmrt.train.models.registry import build

    torch.manual_seed(0)
    model = build(model_name, "edge").eval()
    path = tmp_path / f"{model_name}.onnx"
    export_model(model, path, model_name, "edge", ExportOptions())
    graph = onnx.load(str(path))
    consts = {t.name for t in graph.graph.initializer}
    weighted = [n for n in graph.graph.node if is_weighted(n, consts)]
    groups = set()
    for node in weighted:
        if island_of(node.name) is None:
            group = layer_group(model_name, node.name)
            assert group is not None, node.name
            groups.add(group)
    assert len(weighted) > 60 and groups == set(group_names(model_name))
