"""Apply the deployment rewrites chosen at export time to a built model (on a copy)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from torch import nn

from hmrt.runtime.errors import InputError

ROI_POOL_CHOICES = ("grid", "gather", "matmul")


@dataclass
class RewriteReport:
    """What was swapped: qualified module name -> (old class, new class)."""

    swapped: dict[str, tuple[str, str]] = field(default_factory=dict)
    roi_pool: str = "grid"


def _set_submodule(root: nn.Module, qualname: str, module: nn.Module) -> None:
    parent_name, _, attr = qualname.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, attr, module)


def apply_rewrites(model: nn.Module, roi_pool: str = "grid") -> tuple[nn.Module, RewriteReport]:
    """Return an eval-mode copy of ``model`` with the rewrites for ``roi_pool`` applied.

    ``grid``: the model's own ``GridRoIPool`` (hand-built affine grid + GridSample) is already the
    deployable form and is kept. ``gather``: each ``GridRoIPool`` becomes a ``GatherRoIPool``
    (same geometry, no GridSample) and DaNet's hidden-joint point sample uses gathers too,
    for TensorRT 8.2/8.4. ``matmul``: the separable form (two MatMuls, no GridSample, no
    Gather; valid for axis-aligned RoIs, which DaNet's are), the fastest on ONNX Runtime CPU.
    The input model is not modified.
    """
    from hmrt.export.rewrites.roi_pool_gather import GatherJointRoITheta, GatherRoIPool
    from hmrt.export.rewrites.roi_pool_matmul import MatMulJointRoITheta, MatMulRoIPool
    from hmrt.train.models.danet.joint_roi import JointRoITheta
    from hmrt.train.models.layers.roi_pool import GridRoIPool

    if roi_pool not in ROI_POOL_CHOICES:
        raise InputError(f"--roi-pool {roi_pool}: use one of {', '.join(ROI_POOL_CHOICES)}")
    model = copy.deepcopy(model).eval()
    report = RewriteReport(roi_pool=roi_pool)
    if roi_pool == "grid":
        return model, report
    pool_cls, theta_cls = {
        "gather": (GatherRoIPool, GatherJointRoITheta),
        "matmul": (MatMulRoIPool, MatMulJointRoITheta),
    }[roi_pool]
    targets = [(n, m) for n, m in model.named_modules() if isinstance(m, GridRoIPool)]
    for name, pool in targets:
        _set_submodule(model, name, pool_cls.like(pool))
        report.swapped[name] = (type(pool).__name__, pool_cls.__name__)
    for name, module in model.named_modules():
        if type(module) is JointRoITheta:
            # Same state and geometry; only the hidden-joint point sample differs.
            module.__class__ = theta_cls
            report.swapped[name] = (JointRoITheta.__name__, theta_cls.__name__)
    return model, report
