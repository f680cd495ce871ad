"""Graph audit: would this ONNX graph parse, and compute the right thing, on TensorRT X?

Runs on every export (and on ``build_engine --onnx``). It checks the opset range, that every op
is in the chosen version's parser table, the per-op restrictions and known traps from
``trt_onnx_support.json`` (GridSample opset-20 mode strings, 5-D GridSample, AffineGrid, NonZero,
ScatterND with reduction, ScatterElements reduction before 10 and its index count, non-constant
Reduce axes, Einsum on 8.x, ...). Errors name the node. With ``dla=True`` (``build_engine
--dla``) it also warns about every node that cannot run on a DLA core and is kept on the GPU
(:mod:`hmrt.export.dla`: FP32 islands, Softmax/Reduce over more than 8192 elements, dimensions
over 8192), one finding per node with a size rule and one per FP32 island.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import onnx
from onnx import TensorProto, numpy_helper

from hmrt.export.trt_support import TrtVersion, load_support_table
from hmrt.runtime.errors import InputError

HINTS = {
    "GridSample": "export with --roi-pool gather / --uv-sample gather (no GridSample) for "
    "TensorRT < 8.5",
    "AffineGrid": "build the sampling grid from a constant base grid and theta (hmrt AffineGrid)",
}


class AuditError(InputError):
    """The graph would not parse (or would silently compute something else) on the target."""


@dataclass
class Finding:
    """One audit result about one node."""

    level: str  # error | warning
    node: str
    op: str
    message: str

    def line(self) -> str:
        """``node 'name' (Op): message``."""
        return f"node '{self.node}' ({self.op}): {self.message}"


@dataclass
class AuditReport:
    """All findings for one graph and TensorRT version."""

    trt_version: str
    opset: int
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        """Findings that make the export fail."""
        return [f for f in self.findings if f.level == "error"]

    @property
    def warnings(self) -> list[str]:
        """Warning lines."""
        return [f.line() for f in self.findings if f.level == "warning"]


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _attr(node: onnx.NodeProto, name: str, default):
    for a in node.attribute:
        if a.name == name:
            value = onnx.helper.get_attribute_value(a)
            return value.decode() if isinstance(value, bytes) else value
    return default


def _check(rule: dict, node: onnx.NodeProto, ctx: _Context) -> str | None:
    """Return a problem description if ``node`` breaks ``rule``, else None."""
    kind = rule["check"]
    if kind == "always":
        return rule["why"]
    if kind == "attr_in":
        value = _attr(node, rule["attr"], rule.get("default"))
        if value not in rule["values"]:
            return f"{rule['attr']}={value!r}: {rule['why']}"
        return None
    if kind == "const_input":
        i = rule["input"]
        if i < len(node.input) and node.input[i] and node.input[i] not in ctx.constants:
            return f"input {i} ('{node.input[i]}') is computed at run time: {rule['why']}"
        return None
    if kind == "const_float_inputs":
        bad = [t for t in node.input if ctx.elem_type(t) in ctx.FLOATS and t not in ctx.constants]
        return f"{', '.join(bad)}: {rule['why']}" if bad else None
    if kind == "input_rank":
        rank = ctx.rank(node.input[rule["input"]])
        if rank is not None and rank != rule["rank"]:
            return f"input rank {rank}: {rule['why']}"
        return None
    if kind == "einsum_simple":
        eq = _attr(node, "equation", "")
        terms = eq.replace(" ", "").split("->")[0].split(",")
        if "..." in eq or any(len(set(t)) != len(t) for t in terms):
            return f"equation {eq!r}: {rule['why']}"
        return None
    if kind == "zero_point_zero":
        i = rule["input"]
        name = node.input[i] if i < len(node.input) else ""
        return rule["why"] if name in ctx.arrays and ctx.arrays[name].any() else None
    if kind == "float_input":
        t = ctx.elem_type(node.input[rule["input"]])
        if t is not None and t not in ctx.FLOATS:
            return f"input type {TensorProto.DataType.Name(t)}: {rule['why']}"
        return None
    if kind == "scatter_indices_fit":
        axis = _attr(node, "axis", 0)
        data, index = ctx.dims(node.input[0]), ctx.dims(node.input[1])
        sizes = (data[axis], index[axis]) if data and index else (None, None)
        if all(isinstance(v, int) for v in sizes) and sizes[1] > sizes[0]:
            return f"{sizes[1]} indices into {sizes[0]} along axis {axis}: {rule['why']}"
        return None
    if kind == "no_double":
        if any(ctx.elem_type(t) == TensorProto.DOUBLE for t in node.output):
            return rule["why"]
        return None
    raise ValueError(f"unknown audit check {kind!r}")


class _Context:
    """Types, ranks and constants of a graph's tensors (from shape inference)."""

    FLOATS = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE)

    def __init__(self, model: onnx.ModelProto):
        try:
            inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
        except Exception:
            inferred = model
        g = inferred.graph
        self.values = {v.name: v for v in [*g.value_info, *g.input, *g.output]}
        self.arrays = {
            t.name: numpy_helper.to_array(t)
            for t in g.initializer
            if t.data_type in (TensorProto.INT8, TensorProto.UINT8, TensorProto.INT32)
        }
        self.constants = {t.name for t in g.initializer}
        self.constants |= {o for n in g.node if n.op_type == "Constant" for o in n.output}
        for n in g.node:  # shape inference leaves Constant outputs out of value_info
            value = next((a.t for a in n.attribute if a.name == "value"), None)
            if n.op_type == "Constant" and value is not None:
                info = onnx.helper.make_tensor_value_info(n.output[0], value.data_type, value.dims)
                self.values.setdefault(n.output[0], info)
        for t in g.initializer:
            self.values.setdefault(
                t.name, onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
            )

    def elem_type(self, name: str) -> int | None:
        v = self.values.get(name)
        return v.type.tensor_type.elem_type if v is not None else None

    def dims(self, name: str) -> list[int | str | None] | None:
        """Static sizes (int), symbolic names (str) or None per axis; None without a shape."""
        v = self.values.get(name)
        if v is None or not v.type.tensor_type.HasField("shape"):
            return None
        return [
            d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
            for d in v.type.tensor_type.shape.dim
        ]

    def rank(self, name: str) -> int | None:
        v = self.values.get(name)
        if v is None or not v.type.tensor_type.HasField("shape"):
            return None
        return len(v.type.tensor_type.shape.dim)


def audit(model: onnx.ModelProto, trt_version: str, dla: bool = False) -> AuditReport:
    """Check ``model`` against TensorRT ``trt_version``; return every finding (no raising).

    ``dla``: also warn about the nodes a DLA build keeps on the GPU (:func:`dla_findings`).
    """
    table = load_support_table()
    version: TrtVersion = table.version(trt_version)
    opset = _opset(model)
    report = AuditReport(version.name, opset)
    if not version.min_opset <= opset <= version.max_opset:
        report.findings.append(
            Finding(
                "error",
                "(graph)",
                "opset",
                f"opset {opset} is outside TensorRT {version.name}'s range "
                f"{version.min_opset}..{version.max_opset}; export with --opset {version.default_opset}",
            )
        )
    for o in model.opset_import:
        if o.domain not in ("", "ai.onnx"):
            report.findings.append(
                Finding(
                    "error",
                    "(graph)",
                    o.domain,
                    f"custom domain '{o.domain}' needs a TensorRT plugin; hmrt graphs use none",
                )
            )
    ctx = _Context(model)
    for node in model.graph.node:
        name = node.name or f"<{node.op_type} -> {node.output[0] if node.output else ''}>"
        if node.domain not in ("", "ai.onnx"):
            continue  # reported once per domain above
        if not version.supports(node.op_type):
            hint = HINTS.get(node.op_type, "rewrite the model part that produces it")
            report.findings.append(
                Finding(
                    "error",
                    name,
                    node.op_type,
                    f"not supported by TensorRT {version.name}'s ONNX parser; {hint}",
                )
            )
            continue
        for rule in table.restrictions_for(node.op_type, version.number):
            problem = _check(rule, node, ctx)
            if problem:
                report.findings.append(Finding(rule["level"], name, node.op_type, problem))
    if dla:
        report.findings.extend(dla_findings(model))
    return report


def dla_findings(model: onnx.ModelProto) -> list[Finding]:
    """Warnings for a DLA build: each node breaking a DLA size rule, and each FP32 island."""
    from hmrt.export.dla import island_reason, size_reasons
    from hmrt.runtime.graph_islands import island_nodes

    ops = {n.name: n.op_type for n in model.graph.node}
    found = [
        Finding("warning", name, ops[name], f"cannot run on DLA: {why}; kept on the GPU")
        for name, why in size_reasons(model).items()
    ]
    for island, nodes in island_nodes(model).items():
        found.append(
            Finding(
                "warning",
                f"fp32island[{island}]",
                "FP32 island",
                f"{len(nodes)} nodes {island_reason(island)}; kept on the GPU",
            )
        )
    return found


def audit_model(
    model: onnx.ModelProto, trt_version: str, path: str = "", dla: bool = False
) -> AuditReport:
    """:func:`audit`, raising :class:`AuditError` (one line, first offending node) on errors."""
    report = audit(model, trt_version, dla)
    # Node findings first: they name what to change; graph-level ones (opset) follow.
    errors = sorted(report.errors, key=lambda f: f.node == "(graph)")
    if errors:
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        where = f"{path}: " if path else ""
        raise AuditError(
            f"{where}graph would not parse on TensorRT {report.trt_version}: "
            f"{errors[0].line()}{more}"
        )
    return report
