"""Apply the deployment rewrites chosen at export time to a built model (on a copy)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from torch import nn

from hmrt.runtime.errors import InputError

ROI_POOL_CHOICES = ("grid", "gather", "matmul")
UV_SCATTER_CHOICES = ("add", "matmul")
UV_SAMPLE_CHOICES = ("gather", "grid")


@dataclass
class RewriteReport:
    """What was swapped: qualified module name -> (old class, new class)."""

    swapped: dict[str, tuple[str, str]] = field(default_factory=dict)
    roi_pool: str = "grid"
    uv_scatter: str = "add"
    uv_sample: str = "gather"
    hkmr_fold: bool = True


def _set_submodule(root: nn.Module, qualname: str, module: nn.Module) -> None:
    parent_name, _, attr = qualname.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, attr, module)


def apply_rewrites(
    model: nn.Module,
    roi_pool: str = "grid",
    uv_scatter: str = "add",
    uv_sample: str = "gather",
    hkmr_fold: bool = True,
) -> tuple[nn.Module, RewriteReport]:
    """Return an eval-mode copy of ``model`` with the rewrites for ``roi_pool`` applied.

    ``grid``: the model's own ``GridRoIPool`` (hand-built affine grid + GridSample) is already the
    deployable form and is kept. ``gather``: each ``GridRoIPool`` becomes a ``GatherRoIPool``
    (same geometry, no GridSample) and DaNet's hidden-joint point sample uses gathers too,
    for TensorRT 8.2/8.4. ``matmul``: the separable form (two MatMuls, no GridSample, no
    Gather; valid for axis-aligned RoIs, which DaNet's are), the fastest on ONNX Runtime CPU.
    UV layers (DecoMR, BoBW): ``uv_scatter`` ``add`` (ScatterElements reduction=add, TensorRT
    10+) or ``matmul`` (one-hot MatMul, any TensorRT) replaces every ``UVScatterMean``;
    ``uv_sample`` ``gather`` (the constant table) or ``grid`` (GridSample, TensorRT 8.5+)
    replaces every ``UVToVertices``. HKMR (``hkmr_fold``, default on): every
    ``ConditionedMLP`` projects the image feature once (``hkmr_feature_split``) and every
    ``JointHeads`` becomes one Linear per pass (``hkmr_head_fold``); off exports the training
    form. The input model is not modified.
    """
    if roi_pool not in ROI_POOL_CHOICES:
        raise InputError(f"--roi-pool {roi_pool}: use one of {', '.join(ROI_POOL_CHOICES)}")
    if uv_scatter not in UV_SCATTER_CHOICES:
        raise InputError(f"--uv-scatter {uv_scatter}: use one of {', '.join(UV_SCATTER_CHOICES)}")
    if uv_sample not in UV_SAMPLE_CHOICES:
        raise InputError(f"--uv-sample {uv_sample}: use one of {', '.join(UV_SAMPLE_CHOICES)}")
    model = copy.deepcopy(model).eval()
    report = RewriteReport(
        roi_pool=roi_pool, uv_scatter=uv_scatter, uv_sample=uv_sample, hkmr_fold=hkmr_fold
    )
    _apply_uv(model, report)
    if hkmr_fold:
        apply_hkmr_fold(model, report)
    _apply_group_norm(model, report)
    if roi_pool != "grid":
        _apply_roi_pool(model, report)
    return model, report


def _swap(model: nn.Module, report: RewriteReport, base: type, make) -> None:
    """Replace every submodule of type ``base`` (subclasses too) by ``make(module)``."""
    targets = [(n, m) for n, m in model.named_modules() if n and isinstance(m, base)]
    for name, module in targets:
        new = make(module)
        _set_submodule(model, name, new)
        report.swapped[name] = (type(module).__name__, type(new).__name__)


def _apply_uv(model: nn.Module, report: RewriteReport) -> None:
    from hmrt.export.rewrites.uv_sample_gather import GatherUVToVertices
    from hmrt.export.rewrites.uv_scatter_add import ScatterAddUVScatterMean
    from hmrt.export.rewrites.uv_scatter_matmul import MatMulUVScatterMean
    from hmrt.train.models.layers.uv_sample import UVToVertices, UVToVerticesGrid
    from hmrt.train.models.layers.uv_scatter import UVScatterMean

    scatter_cls = {"add": ScatterAddUVScatterMean, "matmul": MatMulUVScatterMean}
    _swap(model, report, UVScatterMean, lambda m: scatter_cls[report.uv_scatter].like(m))

    def sampler(module: UVToVertices) -> nn.Module:
        if report.uv_sample == "gather":
            return GatherUVToVertices.like(module)
        if module.tables is None:
            raise InputError(
                "--uv-sample grid needs the UVTables the sampler was built from "
                "(UVToVertices(build_uv_tables(...))); use --uv-sample gather"
            )
        return UVToVerticesGrid(module.tables).to(module.index.device)

    _swap(model, report, UVToVertices, sampler)


def _apply_group_norm(model: nn.Module, report: RewriteReport) -> None:
    """Every 4-D GroupNorm (DecoMR) -> axis-wise reductions (ONNX Runtime accuracy)."""
    from hmrt.export.rewrites.group_norm import AxiswiseGroupNorm

    _swap(model, report, nn.GroupNorm, AxiswiseGroupNorm.like)


def _apply_roi_pool(model: nn.Module, report: RewriteReport) -> None:
    from hmrt.export.rewrites.roi_pool_gather import GatherJointRoITheta, GatherRoIPool
    from hmrt.export.rewrites.roi_pool_matmul import MatMulJointRoITheta, MatMulRoIPool
    from hmrt.train.models.danet.joint_roi import JointRoITheta
    from hmrt.train.models.layers.roi_pool import GridRoIPool

    pool_cls, theta_cls = {
        "gather": (GatherRoIPool, GatherJointRoITheta),
        "matmul": (MatMulRoIPool, MatMulJointRoITheta),
    }[report.roi_pool]
    targets = [(n, m) for n, m in model.named_modules() if isinstance(m, GridRoIPool)]
    for name, pool in targets:
        _set_submodule(model, name, pool_cls.like(pool))
        report.swapped[name] = (type(pool).__name__, pool_cls.__name__)
    for name, module in model.named_modules():
        if type(module) is JointRoITheta:
            # Same state and geometry; only the hidden-joint point sample differs.
            module.__class__ = theta_cls
            report.swapped[name] = (JointRoITheta.__name__, theta_cls.__name__)


def apply_hkmr_fold(
    model: nn.Module, report: RewriteReport, split: bool = True, fold: bool = True
) -> None:
    """HKMR's two exact export forms, in place: image-feature projection once per module
    (``split``) and one Linear per pass direction (``fold``); see their modules."""
    from hmrt.export.rewrites.hkmr_feature_split import SplitConditionedMLP
    from hmrt.export.rewrites.hkmr_head_fold import FoldedJointHeads
    from hmrt.train.models.hkmr.regressor import ConditionedMLP, JointHeads

    if split:
        _swap(model, report, ConditionedMLP, SplitConditionedMLP.like)
    if fold:
        _swap(model, report, JointHeads, FoldedJointHeads.like)
