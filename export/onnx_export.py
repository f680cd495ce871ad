"""Export a registry model to ONNX: rewrites, TorchScript exporter at a pinned opset, FP32-island
tagging, onnxslim, checker, contract metadata, graph audit, optional FP16 graph, atomic write.

Exporter choice (tested with torch 2.13, see docs/DEPLOY.md): the TorchScript exporter
(``dynamo=False``) at opset 17. The dynamo exporter in torch 2.13 has no opset-17 implementations
and its version converter fails on this graph, leaving it at opset 18, where the Reduce ops take
``axes`` as an input and which is past what TensorRT 8.x parsers support (8.6: opset 17,
8.2: opset 13). The TorchScript exporter emits opset 13..17 directly and names nodes after module
scopes, which the FP32-island tagging and the engine builder rely on.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import onnx
import torch
from torch import nn

from hmrt.runtime.errors import InputError

OUTPUT_ORDER = ("vertices", "joints3d", "joints2d", "cam", "rotmats", "betas", "pose_joints")
"""The contract's outputs in ONNX order; the first four are required, the others exported where
the model returns them (``pose_joints``: a pose network's own joints, HEMlets; units and
metadata in :func:`pose_joints_metadata`)."""
DEFAULT_OPSET = 17
CROP_FOCAL = 5000.0


@dataclass
class ExportOptions:
    """How to export: opset, RoI pooling and UV layer forms, batch, target TensorRT, precision."""

    opset: int | None = None  # None: the target TensorRT version's default (audit table)
    roi_pool: str | None = None  # None: grid, or gather for TensorRT < 8.5
    batch: int | None = None  # None: dynamic batch dimension
    trt_version: str = "10"
    precision: str = "fp32"  # fp32 | fp16
    simplify: bool = True
    uv_scatter: str | None = None  # None: add (TensorRT 10+), else matmul
    uv_sample: str | None = None  # None: gather
    hkmr_fold: bool = True  # HKMR: feature projection once + per-pass head folding (rewrites)


@dataclass
class ExportResult:
    """What was written and what the audit found."""

    path: Path
    metadata: dict[str, str]
    islands: dict[str, list[str]]
    outputs: list[str]
    warnings: list[str] = field(default_factory=list)
    swapped: dict[str, tuple[str, str]] = field(default_factory=dict)


class _ContractOutputs(nn.Module):
    """Turn the model's output dict into a tuple in the contract's order (ONNX needs a tuple)."""

    def __init__(self, model: nn.Module, names: list[str]):
        super().__init__()
        self.model = model
        self.names = names

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(image)
        return tuple(out[n] for n in self.names)


def resolve_options(options: ExportOptions) -> ExportOptions:
    """Fill opset and RoI pooling from the target TensorRT version (explicit values win)."""
    from hmrt.export.trt_support import load_support_table

    table = load_support_table()
    version = table.version(options.trt_version)
    opset = options.opset if options.opset is not None else version.default_opset
    roi = options.roi_pool or ("grid" if version.supports("GridSample") else "gather")
    if roi == "grid" and not version.supports("GridSample"):
        from hmrt.export.audit import AuditError

        raise AuditError(
            f"--roi-pool grid emits GridSample, which TensorRT {version.name}'s ONNX parser does "
            "not support (added in 8.5); use --roi-pool gather"
        )
    if roi == "grid" and opset < 16:
        raise InputError(f"--roi-pool grid needs opset >= 16 (GridSample); got --opset {opset}")
    if options.precision not in ("fp32", "fp16"):
        raise InputError(
            f"--precision {options.precision}: use fp32 or fp16 (INT8: hmrt calibrate)"
        )
    if options.batch is not None and options.batch < 1:
        raise InputError(f"--batch {options.batch}: use a positive batch size or 'dynamic'")
    uv_scatter, uv_sample = resolve_uv_forms(options, version, opset)
    return ExportOptions(
        opset,
        roi,
        options.batch,
        version.name,
        options.precision,
        options.simplify,
        uv_scatter=uv_scatter,
        uv_sample=uv_sample,
        hkmr_fold=options.hkmr_fold,
    )


def scatter_reduction_supported(version) -> bool:
    """Whether ``version`` parses ScatterElements with ``reduction="add"`` (audit table)."""
    from hmrt.export.trt_support import load_support_table

    rules = load_support_table().restrictions_for("ScatterElements", version.number)
    return version.supports("ScatterElements") and not any(
        r.get("attr") == "reduction" and r["level"] == "error" for r in rules
    )


def resolve_uv_forms(options: ExportOptions, version, opset: int) -> tuple[str, str]:
    """``(uv_scatter, uv_sample)``: explicit values win; defaults follow the target version."""
    from hmrt.export.audit import AuditError

    reduction = scatter_reduction_supported(version)
    scatter = options.uv_scatter or ("add" if reduction else "matmul")
    if scatter == "add" and not reduction:
        raise AuditError(
            f"--uv-scatter add emits ScatterElements(reduction=add), which TensorRT "
            f"{version.name}'s ONNX parser does not support (added in 10.0); use --uv-scatter matmul"
        )
    if scatter == "add" and opset < 16:
        raise InputError(f"--uv-scatter add needs opset >= 16 (reduction); got --opset {opset}")
    sample = options.uv_sample or "gather"
    if sample == "grid" and not version.supports("GridSample"):
        raise AuditError(
            f"--uv-sample grid emits GridSample, which TensorRT {version.name}'s ONNX parser does "
            "not support (added in 8.5); use --uv-sample gather"
        )
    if sample == "grid" and opset < 16:
        raise InputError(f"--uv-sample grid needs opset >= 16 (GridSample); got --opset {opset}")
    return scatter, sample


def model_metadata(model: nn.Module, name: str, variant: str) -> dict[str, str]:
    """The ``hmrt.*`` metadata_props of the ONNX contract (precision/opset/roi filled later)."""
    from hmrt import __version__
    from hmrt.train.checkpoint import body_hash_of

    cfg = getattr(model, "config", None)
    size = tuple(getattr(cfg, "input_size", None) or getattr(model, "input_size", (224, 224)))
    mean = tuple(getattr(cfg, "mean", None) or getattr(model, "mean", ()))
    std = tuple(getattr(cfg, "std", None) or getattr(model, "std", ()))
    if len(size) == 1:
        size = (size[0], size[0])
    return {
        "hmrt.model": str(name),
        "hmrt.variant": str(variant),
        "hmrt.input_size": ",".join(str(int(s)) for s in size),
        "hmrt.mean": ",".join(f"{float(m):.6g}" for m in mean),
        "hmrt.std": ",".join(f"{float(s):.6g}" for s in std),
        "hmrt.body_hash": body_hash_of(model) or "",
        "hmrt.version": __version__,
        "hmrt.crop_focal": f"{CROP_FOCAL:g}",
    }


def pose_joints_metadata(model: nn.Module, name: str) -> dict[str, str]:
    """The metadata_props that label the optional ``pose_joints`` output, so the runtime can
    name and map the joints without a config file: ``hmrt.pose_joints`` (the joint set the
    model declares as ``pose_joint_set``, e.g. ``hemlets18``; else the model name),
    ``hmrt.pose_joint_names`` (comma-separated, output order, when the model declares
    ``pose_joint_names``) and ``hmrt.pose_joints_units``
    (:data:`hmrt.runtime.model_info.POSE_JOINTS_UNITS`: x, y crop pixels, z root-relative
    metres)."""
    from hmrt.runtime.model_info import POSE_JOINTS_UNITS

    meta = {
        "hmrt.pose_joints": str(getattr(model, "pose_joint_set", "") or name),
        "hmrt.pose_joints_units": POSE_JOINTS_UNITS,
    }
    names = tuple(getattr(model, "pose_joint_names", ()) or ())
    if any("," in n for n in names):
        raise InputError(f"pose joint names must not contain commas: {names}")
    if names:
        meta["hmrt.pose_joint_names"] = ",".join(names)
    return meta


def output_names(model: nn.Module, size: tuple[int, int]) -> list[str]:
    """The contract outputs this model produces, in contract order."""
    with torch.no_grad():
        out = model(torch.zeros(2, 3, *size))
    missing = [n for n in OUTPUT_ORDER[:4] if n not in out]
    if missing:
        raise InputError(f"model output lacks {', '.join(missing)} (ONNX contract outputs)")
    return [n for n in OUTPUT_ORDER if n in out]


def torch_to_onnx(
    model: nn.Module,
    names: list[str],
    size: tuple[int, int],
    opset: int,
    batch: int | None,
    islands: list[str],
) -> onnx.ModelProto:
    """Run the TorchScript exporter (dynamo=False) with island markers; return the raw graph."""
    import io

    from hmrt.export.islands import marked_islands

    wrapper = _ContractOutputs(model, names).eval()
    dummy = torch.zeros(batch or 2, 3, *size)  # batch 2: no size-1 broadcasting baked in
    dynamic = None if batch else {n: {0: "batch"} for n in ["image", *names]}
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter is deprecated in torch >= 2.9 but is the one that can emit
        # opset <= 17 (module docstring); its warnings are expected here.
        warnings.simplefilter("ignore")
        with marked_islands(wrapper.model, islands):
            try:
                torch.onnx.export(
                    wrapper,
                    (dummy,),
                    buf,
                    dynamo=False,
                    opset_version=opset,
                    input_names=["image"],
                    output_names=names,
                    dynamic_axes=dynamic,
                    do_constant_folding=True,
                )
            except torch.onnx.errors.OnnxExporterError as exc:
                first = str(exc).strip().splitlines()[0]
                raise InputError(f"torch could not export at opset {opset}: {first}") from exc
    return onnx.load_from_string(buf.getvalue())


def _set_batch_dims(model: onnx.ModelProto, batch: int | None) -> None:
    """Name dim 0 of every graph input/output ``batch`` (onnxslim renames them) or fix it."""
    for value in [*model.graph.input, *model.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if not dims:
            continue
        if batch:
            dims[0].ClearField("dim_param")
            dims[0].dim_value = batch
        else:
            dims[0].ClearField("dim_value")
            dims[0].dim_param = "batch"


def simplify(model: onnx.ModelProto) -> onnx.ModelProto:
    """onnxslim: constant folding, fusions, dead-node and identity removal; FP32 islands kept.

    onnxslim replaces fused patterns (ReduceSum + Unsqueeze, Reshape + Reshape, Slice + Slice,
    ...) by new nodes named after tensors, which drops the ``fp32island[...]`` node names the
    FP16 graph, the engine builder's pins and the INT8 plan read. Island membership is recorded
    by output tensor name before and restored after (:func:`hmrt.export.islands.restore_islands`).
    """
    import onnxslim

    from hmrt.export.islands import island_tensors, restore_islands

    members = island_tensors(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        slim = onnxslim.slim(model)
    restore_islands(slim, members)
    return slim


def set_metadata(model: onnx.ModelProto, meta: dict[str, str]) -> None:
    """Replace ``metadata_props`` with ``meta`` (sorted, so files are reproducible)."""
    del model.metadata_props[:]
    for key in sorted(meta):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(meta[key])


def export_model(
    model: nn.Module,
    out: str | Path,
    name: str,
    variant: str,
    options: ExportOptions,
) -> ExportResult:
    """Export ``model`` to ``out`` (atomically) as DEVELOPING.md's ONNX contract describes.

    Applies the RoI-pooling rewrite, exports, tags FP32 islands, simplifies, checks, audits for
    ``options.trt_version`` (raises :class:`hmrt.export.audit.AuditError` naming the node), and
    for ``precision="fp16"`` writes the mixed-precision graph instead of the FP32 one.
    """
    from hmrt.export.audit import audit_model
    from hmrt.export.islands import declared_islands, tag_islands
    from hmrt.export.rewrites import apply_rewrites
    from hmrt.runtime.atomic import atomic_path

    opts = resolve_options(options)
    deploy, report = apply_rewrites(
        model, opts.roi_pool, opts.uv_scatter, opts.uv_sample, hkmr_fold=opts.hkmr_fold
    )
    meta = model_metadata(model, name, variant)
    size = tuple(int(v) for v in meta["hmrt.input_size"].split(","))
    names = output_names(deploy, size)
    if "pose_joints" in names:
        meta.update(pose_joints_metadata(model, name))
    islands = declared_islands(deploy)
    graph = torch_to_onnx(deploy, names, size, opts.opset, opts.batch, islands)
    tag_islands(graph)
    if opts.simplify:
        graph = simplify(graph)
    _set_batch_dims(graph, opts.batch)
    meta.update(
        {
            "hmrt.precision": "fp32",
            "hmrt.opset": str(opts.opset),
            "hmrt.roi_pool": opts.roi_pool,
            "hmrt.uv_scatter": opts.uv_scatter,
            "hmrt.uv_sample": opts.uv_sample,
            "hmrt.fp32_islands": ",".join(islands),
            "hmrt.trt_target": opts.trt_version,
            "hmrt.exporter": f"torch {torch.__version__} torchscript (dynamo=False)",
        }
    )
    set_metadata(graph, meta)
    onnx.checker.check_model(graph, full_check=True)
    found = audit_model(graph, opts.trt_version)
    if opts.precision == "fp16":
        from hmrt.export.fp16_graph import convert_to_fp16

        graph = convert_to_fp16(graph)
        meta["hmrt.precision"] = "fp16"
        set_metadata(graph, meta)
        onnx.checker.check_model(graph, full_check=True)
        found = audit_model(graph, opts.trt_version)
    out = Path(out)
    with atomic_path(out) as tmp:
        onnx.save(graph, str(tmp))
    from hmrt.runtime.graph_islands import island_nodes

    return ExportResult(out, meta, island_nodes(graph), names, found.warnings, report.swapped)
