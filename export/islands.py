"""FP32 islands in the exported graph, found from the model's own declaration.

Models mark precision-sensitive submodules (soft-argmax, RoI index math, rotations, LBS) by
subclassing ``Fp32Module``; :func:`hmrt.train.models.layers.fp32_islands` lists them. ONNX node
names from the TorchScript exporter only loosely follow module paths (``ModuleDict`` levels
vanish, reused modules get ``_1`` suffixes), so instead of guessing from names this module
brackets each island's forward with marker ops during export, walks the graph between the
markers, and renames the nodes inside to ``fp32island[<qualname>]<original name>``.
TensorRT names its layers after ONNX nodes, so the engine builder pins exactly these layers,
and the FP16 graph writer keeps exactly these nodes in float32. The naming itself (reading a
tag back) is the graph contract in :mod:`hmrt.runtime.graph_islands`; this module is the
torch-side marking and tagging. Graph rewriters that replace nodes (onnxslim's fusions) drop the
names: :func:`island_tensors` records membership by output tensor name before a rewrite and
:func:`restore_islands` re-tags after it (``hmrt.export.onnx_export.simplify`` does both).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import onnx
import torch
from torch import nn

from hmrt.runtime.graph_islands import island_name, island_of

MARK_DOMAIN = "hmrt_mark"


def declared_islands(model: nn.Module) -> list[str]:
    """Qualified names of the model's outermost FP32 islands (its own declaration)."""
    from hmrt.train.models.layers.precision import fp32_islands

    return list(fp32_islands(model))


class _Mark(torch.autograd.Function):
    """Identity in torch; a ``hmrt_mark::Mark`` node carrying ``tag`` in the exported graph."""

    @staticmethod
    def forward(ctx, x, tag):
        return x.clone()

    @staticmethod
    def symbolic(g, x, tag):
        out = g.op(f"{MARK_DOMAIN}::Mark", x, tag_s=tag)
        out.setType(x.type())
        return out


def _mark(value, tag: str):
    if torch.is_tensor(value) and value.is_floating_point():
        return _Mark.apply(value, tag)
    if isinstance(value, (tuple, list)):
        return type(value)(_mark(v, tag) for v in value)
    if isinstance(value, dict):
        return {k: _mark(v, tag) for k, v in value.items()}
    return value


@contextlib.contextmanager
def marked_islands(model: nn.Module, qualnames: list[str]) -> Iterator[None]:
    """While active, each island's float inputs/outputs pass through marker ops (export only)."""
    patched = []
    for name in qualnames:
        module = model.get_submodule(name)
        original = module.forward

        def forward(*args, __orig=original, __name=name, **kwargs):
            args = tuple(_mark(a, f"{__name}|in") for a in args)
            kwargs = {k: _mark(v, f"{__name}|in") for k, v in kwargs.items()}
            return _mark(__orig(*args, **kwargs), f"{__name}|out")

        module.forward = forward
        patched.append(module)
    try:
        yield
    finally:
        for module in patched:
            del module.forward  # back to the class's forward


def tag_islands(model: onnx.ModelProto) -> dict[str, list[str]]:
    """Rename the nodes between markers to island names, turn markers into Identity.

    Returns ``{island qualname: [node names]}``. Raises RuntimeError if a walk from an island's
    outputs reaches a graph input without crossing its input markers (an island that reads a
    tensor it was not given: the marking would be wrong, so fail loudly).
    """
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    graph_inputs = {i.name for i in graph.input}
    found: dict[str, list[str]] = {}
    for node in list(graph.node):
        if node.domain != MARK_DOMAIN:
            continue
        tag = onnx.helper.get_attribute_value(node.attribute[0]).decode()
        name, _, side = tag.rpartition("|")
        if side != "out":
            continue
        members = found.setdefault(name, [])
        stack = list(node.input)
        seen: set[str] = set()
        while stack:
            tensor = stack.pop()
            if tensor in seen or not tensor:
                continue
            seen.add(tensor)
            src = producer.get(tensor)
            if src is None:
                if tensor in graph_inputs:
                    raise RuntimeError(f"FP32 island {name} reads graph input {tensor} directly")
                continue  # an initializer
            if src.domain == MARK_DOMAIN:
                src_tag = onnx.helper.get_attribute_value(src.attribute[0]).decode()
                if src_tag == f"{name}|in":
                    continue
                raise RuntimeError(f"FP32 island {name} crosses marker {src_tag}")
            if island_of(src.name) is None:
                src.name = island_name(name, src.name)
                members.append(src.name)
            stack.extend(src.input)
    for node in graph.node:
        if node.domain == MARK_DOMAIN:
            node.op_type, node.domain = "Identity", ""
            del node.attribute[:]
    keep = [o for o in model.opset_import if o.domain != MARK_DOMAIN]
    del model.opset_import[:]
    model.opset_import.extend(keep)
    return found


def island_tensors(model: onnx.ModelProto) -> dict[str, str]:
    """``{tensor name: island qualname}`` for every output of a tagged island node.

    Tensor names are what graph rewriters keep: onnxslim replaces fused patterns (ReduceSum +
    Unsqueeze, Reshape + Reshape, Slice + Slice, MatMul + Add -> Gemm, ...) by new nodes named
    after a tensor, dropping the ``fp32island[...]`` node name, but the new node still produces
    the pattern's last output tensor. Record this before a rewrite, re-tag with
    :func:`restore_islands` after it.
    """
    out: dict[str, str] = {}
    for node in model.graph.node:
        name = island_of(node.name)
        if name is not None:
            for tensor in node.output:
                if tensor:
                    out[tensor] = name
    return out


def _island_of_new_node(node: onnx.NodeProto, tensors: dict[str, str]) -> str | None:
    """The island an untagged node of a rewritten graph belongs to, from ``tensors``.

    In order: an output tensor an island node produced before the rewrite (the node computes
    what the island computed); else a node *named* after such a tensor, exactly or with a
    ``_suffix`` (onnxslim names a fused node after its first node's output tensor, and helper
    nodes it adds after that name plus a suffix such as ``_pre_reshape``): the fused pattern
    started inside the island. None: not an island node.
    """
    for tensor in node.output:
        if tensor in tensors:
            return tensors[tensor]
    name = node.name
    while name:
        if name in tensors:
            return tensors[name]
        name, sep, _ = name.rpartition("_")
        if not sep:
            return None
    return None


def restore_islands(model: onnx.ModelProto, tensors: dict[str, str]) -> dict[str, list[str]]:
    """Re-tag the nodes a graph rewrite (onnxslim) left untagged inside FP32 islands.

    ``tensors`` is :func:`island_tensors` of the graph before the rewrite. Renames, in place,
    every untagged node that :func:`_island_of_new_node` places in an island; returns
    ``{island qualname: [new node names]}`` of the re-tagged nodes. Exact for rewrites that keep
    tensor names (constant folding, dead-node, identity and fusion passes): a node whose output
    an island produced, or that a fusion started from an island node, belongs to the island.
    """
    restored: dict[str, list[str]] = {}
    for node in model.graph.node:
        if island_of(node.name) is not None:
            continue
        name = _island_of_new_node(node, tensors)
        if name is not None:
            node.name = island_name(name, node.name)
            restored.setdefault(name, []).append(node.name)
    return restored
