"""FP32 islands survive the simplifier: no island node is lost, none runs in FP16.

onnxslim (run by every export) replaces fused patterns (ReduceSum + Unsqueeze, Reshape +
Reshape, Slice + Slice, ...) by new nodes named after tensors, which dropped the
``fp32island[...]`` node names. ``export.onnx_export.simplify`` records island membership by
output tensor name and restores it. Checked on DaNet-edge (all three RoI-pooling forms),
DecoMR-edge (both image-to-UV scatter forms), the export toy (2D soft-argmax) and a volumetric
soft-argmax toy with an island written in the form that onnxslim fuses (sums + stack).
"""

from __future__ import annotations

import warnings

import onnx
import pytest
import torch
from export_toy import toy_model
from model_helpers import one_torch_thread  # noqa: F401
from onnx import TensorProto
from torch import nn

from hmrt.export.fp16_graph import convert_to_fp16
from hmrt.export.islands import declared_islands, island_tensors, restore_islands, tag_islands
from hmrt.export.onnx_export import (
    ExportOptions,
    model_metadata,
    output_names,
    resolve_options,
    simplify,
    torch_to_onnx,
)
from hmrt.export.rewrites import apply_rewrites
from hmrt.runtime.errors import InputError
from hmrt.runtime.graph_islands import island_nodes, island_of
from hmrt.train.models.config import ModelConfig
from hmrt.train.models.layers import Fp32Module, SoftArgmax3d

FLOATS = (TensorProto.FLOAT, TensorProto.FLOAT16)


class StackedSums(Fp32Module):
    """The volume's x/y moments as ``sum`` + ``stack``: the ReduceSum (keepdims 0) + Unsqueeze
    pair onnxslim fuses into one new node (the form SoftArgmax3d avoids by hand)."""

    def forward(self, volume: torch.Tensor) -> torch.Tensor:
        prob = torch.softmax(volume.flatten(2), dim=-1).reshape(volume.shape)
        gx = torch.linspace(0.0, 1.0, volume.shape[-1])
        gy = torch.linspace(0.0, 1.0, volume.shape[-2])
        x = (prob.sum(dim=2) * gx).sum(dim=-1)
        y = (prob.sum(dim=3) * gy).sum(dim=-1)
        return torch.stack([x, y], dim=-1)


class VolumeToy(nn.Module):
    """conv -> 1x1 conv to J*D volumes -> SoftArgmax3d, and the same maps -> StackedSums."""

    def __init__(self, joints: int = 3, depth: int = 8, size: int = 16):
        super().__init__()
        self.config = ModelConfig(name="toy3d", variant="edge", input_size=(size, size))
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.to_volume = nn.Conv2d(8, joints * depth, 1)
        self.to_maps = nn.Conv2d(8, joints, 1)
        self.head = SoftArgmax3d(joints, depth, size, size)
        self.sums = StackedSums()

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        f = torch.relu(self.conv(image))
        return {"joints3d": self.head(self.to_volume(f)), "joints2d": self.sums(self.to_maps(f))}


def _graphs(model: nn.Module, options: ExportOptions) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """``export_model``'s steps up to the simplifier: (tagged graph, simplified graph)."""
    opts = resolve_options(options)
    deploy, _ = apply_rewrites(model, opts.roi_pool, opts.uv_scatter, opts.uv_sample)
    meta = model_metadata(model, "m", "edge")
    size = tuple(int(v) for v in meta["hmrt.input_size"].split(","))
    try:
        names = output_names(deploy, size)
    except InputError:  # the volume toy has no contract outputs
        with torch.no_grad():
            names = list(deploy(torch.zeros(2, 3, *size)))
    tagged = torch_to_onnx(deploy, names, size, opts.opset, None, declared_islands(deploy))
    tag_islands(tagged)
    return tagged, simplify(onnx.ModelProto.FromString(tagged.SerializeToString()))


def _sandwiched(model: onnx.ModelProto) -> list[tuple[str, str, str]]:
    """Untagged nodes inside one island: every non-constant input comes from nodes of island Q
    and every consumer is a node of Q (no graph output). ``(Q, op, name)`` per node."""
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    outputs = {o.name for o in g.output}
    found = []
    for n in g.node:
        if island_of(n.name) is not None or n.op_type == "Constant":
            continue
        src = {island_of(producer[i].name) for i in n.input
               if i in producer and producer[i].op_type != "Constant"}  # fmt: skip
        dst = {island_of(c.name) for o in n.output for c in consumers.get(o, [])}
        if any(o in outputs for o in n.output):
            dst.add(None)
        if len(src) == 1 and None not in src and src == dst:
            found.append((src.pop(), n.op_type, n.name))
    return found


def _assert_islands_kept(tagged: onnx.ModelProto, slim: onnx.ModelProto) -> None:
    """No island node lost by the simplifier (see the module docstring)."""
    assert set(island_nodes(slim)) == set(island_nodes(tagged))
    before = island_tensors(tagged)
    moved = [(before[o], n.op_type, n.name) for n in slim.graph.node for o in n.output
             if o in before and island_of(n.name) != before[o]]  # fmt: skip
    assert moved == [], moved  # what an island computed, a node of that island computes
    assert _sandwiched(slim) == []  # nothing between an island's entry and exit is untagged


def _assert_fp16_islands_fp32(slim: onnx.ModelProto) -> None:
    """The FP16 graph runs no island node in float16 (inputs and outputs all float32)."""
    fp16 = convert_to_fp16(slim)
    g = onnx.shape_inference.infer_shapes(fp16).graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*g.value_info, *g.input, *g.output]}
    types.update({t.name: t.data_type for t in g.initializer})
    half = [
        (n.name, t)
        for n in g.node
        if island_of(n.name) is not None
        for t in [*n.input, *n.output]
        if types.get(t) == TensorProto.FLOAT16
    ]
    assert half == [], half[:5]
    assert any(types.get(n.output[0]) == TensorProto.FLOAT16 for n in g.node)  # really FP16


def _zoo(name: str) -> nn.Module:
    from hmrt.assets import asset_path
    from hmrt.train.models import build

    if not asset_path("body/hmrt_body.npz").is_file():
        pytest.skip("needs the bundled body model")
    torch.manual_seed(0)
    return build(name, "edge").eval()


DANET_FORMS = [("grid", "10"), ("gather", "8.2"), ("matmul", "8.2")]


@pytest.mark.parametrize(("roi", "trt"), DANET_FORMS, ids=[r for r, _ in DANET_FORMS])
def test_danet_edge_keeps_every_island_node(roi, trt):
    tagged, slim = _graphs(_zoo("danet"), ExportOptions(roi_pool=roi, trt_version=trt))
    _assert_islands_kept(tagged, slim)
    if roi == "grid":
        _assert_fp16_islands_fp32(slim)


@pytest.mark.parametrize("trt", ["10", "8.6"], ids=["scatter-add", "scatter-matmul"])
def test_decomr_edge_keeps_every_island_node(trt):
    tagged, slim = _graphs(_zoo("decomr"), ExportOptions(trt_version=trt))
    _assert_islands_kept(tagged, slim)
    if trt == "10":
        _assert_fp16_islands_fp32(slim)


def test_soft_argmax_toys_keep_every_island_node():
    tagged, slim = _graphs(toy_model(), ExportOptions())
    _assert_islands_kept(tagged, slim)
    _assert_fp16_islands_fp32(slim)
    torch.manual_seed(0)
    tagged, slim = _graphs(VolumeToy().eval(), ExportOptions())
    _assert_islands_kept(tagged, slim)
    _assert_fp16_islands_fp32(slim)
    ops = {n.op_type for n in slim.graph.node if island_of(n.name) == "sums"}
    assert {"Softmax", "ReduceSum"} <= ops


def test_restore_retags_the_reduce_unsqueeze_fusion():
    """What the fix repairs (onnxslim 0.1.x): the ReduceSum + Unsqueeze pairs of ``stack`` of
    ``sum``s become one ReduceSum named after a tensor; restore_islands tags it again."""
    import onnxslim

    torch.manual_seed(0)
    tagged, _ = _graphs(VolumeToy().eval(), ExportOptions(simplify=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = onnxslim.slim(onnx.ModelProto.FromString(tagged.SerializeToString()))
    untagged = [n for n in raw.graph.node if n.op_type == "ReduceSum" and not island_of(n.name)]
    if not untagged:
        pytest.skip("this onnxslim keeps the names: nothing to restore")
    restored = restore_islands(raw, island_tensors(tagged))
    assert len(restored.get("sums", [])) >= len(untagged)
    assert not [
        n.name for n in raw.graph.node if n.op_type == "ReduceSum" and not island_of(n.name)
    ]
    _assert_islands_kept(tagged, raw)
