"""What the INT8 graph quantizes: every weighted op except the FP32 islands and the final heads.

Three sources decide it, none of them name guessing inside this module:

* **FP32 islands**: nodes the exporter tagged from the model's own ``Fp32Module`` declaration
  (``fp32island[<qualname>]...`` names, read with :mod:`hmrt.runtime.graph_islands`; the same
  tags the FP16 graph and the TensorRT builder use). Never quantized, and no Q/DQ on what they
  read.
* **Final regression heads**: weighted nodes (Conv/Gemm/MatMul with a constant weight) from which
  a graph output is reachable without crossing another weighted node outside the islands. In
  DaNet these are the rotation head ``regressor.pose_regressors.1`` and the camera/shape ``fc``
  of the global stream: their outputs *are* the parameters, and int8 rounding of a regression
  output is exactly how deployed pose models fail silently.
* **Layer groups** (:data:`LAYER_GROUPS`): node-name patterns per model (the TorchScript exporter
  names nodes after module scopes, e.g. ``/model/regressor/body_net/...``), used to leave whole
  groups in float and to measure per-group sensitivity. ``tests/test_calib_qdq.py`` checks that
  every weighted DaNet node falls in exactly one group, so a renamed module fails a test instead
  of silently changing the plan.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import onnx

from hmrt.runtime.graph_islands import island_of

WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
DEFAULT_OP_TYPES = ("Conv", "Gemm", "MatMul", "Add")
"""Op types quantized by default: the weighted ops plus the residual Adds between them (both
Add inputs quantized lets TensorRT fuse the skip connection into the int8 convolution)."""

_BACKBONE = "/model/img2iuv/iuv_est/"
_TRUNK_STAGES = [
    # The ``/model/backbone`` trunk of HKMR and HEMlets by resolution: MobileNetV2 features
    # (edge variants) or ResNet layers (paper variants).
    ("backbone.s1", r"/model/backbone/(features/)?(features\.[0-3][/.]|conv1|bn1|layer1/)"),
    ("backbone.s2", r"/model/backbone/(features/)?(features\.[4-6][/.]|layer2/)"),
    ("backbone.s3", r"/model/backbone/(features/)?(features\.([7-9]|1[0-3])[/.]|layer3/)"),
    ("backbone.s4", r"/model/backbone/(features/)?(features\.1[4-8][/.]|layer4/)"),
    ("backbone.rest", r"/model/backbone/"),
]


_DENSE_CNET = (
    # DecoMR's CNet (BoBW's DMP): the encoder by resolution (MobileNetV2 ``body`` of the edge
    # presets, or the ResNet), the laterals, the decoder and the IUV heads.
    ("encoder.s1", r"(body/features\.[0-3][/.]|resnet/(conv1|bn1|layer1/))"),
    ("encoder.s2", r"(body/features\.[4-6][/.]|resnet/layer2/)"),
    ("encoder.s3", r"(body/features\.([7-9]|1[0-3])[/.]|resnet/layer3/)"),
    ("encoder.s4", r"(body/features\.1[4-8][/.]|resnet/layer4/)"),
    ("encoder.laterals", r"lateral"),
    ("decoder", r"dp_layers"),
    ("iuv_heads", r"dp_(uv|mask)_end"),
)
_UV_NET = (
    # DecoMR's LNet (BoBW's UVI): the MLP heads on the pooled code, the 1x1 input convs, the
    # hourglass and the decoder to the location map.
    ("global_camera", r"(fc_head|camera)"),
    ("uv_conv1", r"uv_conv1"),
    ("hourglass", r"hg/"),
    ("uv_decoder", r"(uv_conv2|decoder|uv_end)"),
)


def _under(module: str, groups: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    """``groups`` with each pattern anchored under ``/model/{module}/``."""
    return [(name, f"/model/{module}/" + pattern) for name, pattern in groups]


LAYER_GROUPS: dict[str, list[tuple[str, str]]] = {
    "danet": [
        # MobileNetV2 stages of the edge backbone by resolution (112-56, 28, 14, 7 px).
        ("backbone.s1", _BACKBONE + r"body/features\.[0-3][/.]"),
        ("backbone.s2", _BACKBONE + r"body/features\.[4-6][/.]"),
        ("backbone.s3", _BACKBONE + r"body/features\.([7-9]|1[0-3])[/.]"),
        ("backbone.s4", _BACKBONE + r"body/features\.1[4-7][/.]"),
        ("backbone.fpn", _BACKBONE + r"(lateral|smooth)"),
        ("backbone.rest", _BACKBONE),  # the rest (all of HRNet in the paper variant)
        ("iuv_heads", r"/model/img2iuv/(final_pred/)?predict_"),
        ("global_stream", r"/model/regressor/body_net/"),
        ("local_streams", r"/model/regressor/(limb_net|limb_reslayer)/"),
        ("refinement", r"/model/regressor/(r2p_gcn|refine_gcn|p2r_gcn)/"),
        ("heads", r"/model/regressor/(pose_regressors|coord_regressors)"),
    ],
    "hkmr": [
        *_TRUNK_STAGES,
        ("feature_projection", r"/model/regressor/feature"),  # Φ's share of every E_c, S, C
        ("chains", r"/model/regressor/(root|head|left_arm|right_arm|left_leg|right_leg)"),
        ("shape_camera", r"/model/regressor/(shape|camera)"),
        ("regressor.rest", r"/model/regressor/"),
    ],
    "hemlets": [
        *_TRUNK_STAGES,  # then the official pose network's modules and hmrt's PoSh regressor
        ("conv_feature", r"/model/conv_feature/"),  # the image-feature upsampling branch
        ("conv_FBI", r"/model/conv_FBI/"),  # the HEMlets + 2D heatmap branch
        ("FBI_encoder", r"/model/FBI_encoder/"),
        ("conv_tail", r"/model/conv_tail/"),  # fusion and the volume logits
        ("posh", r"/model/posh/"),
    ],
    "decomr": [*_under("cnet", _DENSE_CNET), *_under("lnet", _UV_NET)],
    "bobw": [
        *_under("dmp", _DENSE_CNET),
        # the exporter names ModuleDict entries by key: /model/dmp/location/location.0/...
        ("dense_heads", r"/model/dmp/(dense_heads|location|joint|displacement)[/.]"),
        ("ik", r"/model/ik/"),  # the joint inpaint MLP and GIK-Net
        *_under("uvi", _UV_NET),
    ],
}
"""``model -> [(group, regex searched in the node name)]``; the first match wins."""


def layer_group(model_name: str, node_name: str) -> str | None:
    """The layer group of ``node_name`` for ``model_name`` (None when unknown / no table)."""
    for group, pattern in LAYER_GROUPS.get(model_name, []):
        if re.search(pattern, node_name):
            return group
    return None


def group_names(model_name: str) -> list[str]:
    """Groups of a model in table order (without duplicates)."""
    return list(dict.fromkeys(g for g, _ in LAYER_GROUPS.get(model_name, [])))


def _initializers(model: onnx.ModelProto) -> set[str]:
    names = {t.name for t in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant":
            names.update(n.output)
    return names


def is_weighted(node: onnx.NodeProto, constants: set[str]) -> bool:
    """Conv/Gemm/MatMul reading a constant weight (a matrix product of two activations is not)."""
    return node.op_type in WEIGHTED_OPS and any(i in constants for i in node.input[:2])


def final_heads(model: onnx.ModelProto) -> list[str]:
    """Weighted nodes (outside islands) that reach a graph output without another weighted node."""
    g = model.graph
    constants = _initializers(model)
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    outputs = {o.name for o in g.output}
    heads = []
    for node in g.node:
        if not is_weighted(node, constants) or island_of(node.name) is not None:
            continue
        stack, seen = list(node.output), set()
        while stack:
            t = stack.pop()
            if t in seen:
                continue
            seen.add(t)
            if t in outputs:
                heads.append(node.name)
                break
            for c in consumers.get(t, []):
                if is_weighted(c, constants) and island_of(c.name) is None:
                    continue  # another head/trunk layer takes over from here
                stack.extend(c.output)
    return heads


def depthwise_convs(model: onnx.ModelProto) -> list[str]:
    """Conv nodes with one input channel per group (``group`` equal to the channel count)."""
    from onnx import numpy_helper

    weights = {t.name: t for t in model.graph.initializer}
    names = []
    for n in model.graph.node:
        if n.op_type != "Conv" or island_of(n.name) is not None or n.input[1] not in weights:
            continue
        group = next((a.i for a in n.attribute if a.name == "group"), 1)
        shape = numpy_helper.to_array(weights[n.input[1]]).shape
        if group > 1 and shape[1] == 1:
            names.append(n.name)
    return names


@dataclass
class QuantPlan:
    """Node names kept in float and why; what ORT is asked to quantize."""

    op_types: tuple[str, ...] = DEFAULT_OP_TYPES
    islands: list[str] = field(default_factory=list)
    heads: list[str] = field(default_factory=list)
    excluded_groups: dict[str, list[str]] = field(default_factory=dict)
    only_groups: tuple[str, ...] | None = None

    @property
    def nodes_to_exclude(self) -> list[str]:
        """Every node ORT must leave in float."""
        names = [*self.islands, *self.heads]
        for members in self.excluded_groups.values():
            names += members
        return list(dict.fromkeys(names))


def make_plan(
    model: onnx.ModelProto,
    model_name: str | None = None,
    op_types: Iterable[str] = DEFAULT_OP_TYPES,
    exclude_groups: Iterable[str] = (),
    only_groups: Iterable[str] | None = None,
    quantize_heads: bool = False,
    float_depthwise: bool = False,
) -> QuantPlan:
    """The plan for ``model``: islands and final heads excluded, plus ``exclude_groups``.

    ``only_groups`` (sensitivity runs) excludes every node *outside* those groups instead;
    ``float_depthwise`` leaves depthwise convolutions in float (group ``depthwise``).
    ``model_name`` defaults to the graph's ``hmrt.model`` metadata.
    """
    from hmrt.runtime.errors import InputError

    meta = {p.key: p.value for p in model.metadata_props}
    name = model_name or meta.get("hmrt.model", "")
    known = group_names(name)
    wanted = [*exclude_groups, *(only_groups or ())]
    unknown = [g for g in wanted if g not in known]
    if unknown:
        raise InputError(
            f"unknown layer group(s) {', '.join(unknown)} for model '{name}'; "
            f"known: {', '.join(known) or 'none (no group table for this model)'}"
        )
    plan = QuantPlan(op_types=tuple(op_types))
    plan.islands = [n.name for n in model.graph.node if island_of(n.name) is not None]
    plan.heads = [] if quantize_heads else final_heads(model)
    excluded: dict[str, list[str]] = {}
    only = None if only_groups is None else set(only_groups)
    for n in model.graph.node:
        if island_of(n.name) is not None:
            continue
        group = layer_group(name, n.name) or "other"
        if group in set(exclude_groups) or (only is not None and group not in only):
            excluded.setdefault(group, []).append(n.name)
    if float_depthwise:
        excluded["depthwise"] = depthwise_convs(model)
    plan.excluded_groups = excluded
    plan.only_groups = None if only_groups is None else tuple(only_groups)
    return plan
