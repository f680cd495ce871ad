"""Per-layer-group INT8 sensitivity: which part of the network the INT8 error comes from.

For every layer group of the model (:data:`hmrt.calib.qdq_plan.LAYER_GROUPS`), two INT8 graphs
are made from the same calibration ranges (no recalibration, so differences are the groups'
alone): *only this group quantized* (its own error) and *everything but this group* (what
leaving it in float would recover). Each is scored on the same synth-val crops as the main table:
PA-MPJPE change against the FP32 graph on those crops and the largest vertex deviation from it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np


def quantizable_groups(fp32_path: Path, model_name: str) -> list[str]:
    """Groups of the table that hold at least one node ORT would quantize (heads excluded)."""
    import onnx

    from hmrt.calib.qdq_plan import DEFAULT_OP_TYPES, group_names, layer_group
    from hmrt.runtime.graph_islands import island_of

    model = onnx.load(str(fp32_path), load_external_data=False)
    present = set()
    for n in model.graph.node:
        if n.op_type in DEFAULT_OP_TYPES and island_of(n.name) is None:
            present.add(layer_group(model_name, n.name))
    return [g for g in group_names(model_name) if g in present and g != "heads"]


def group_sensitivity(
    fp32_path: Path,
    cache: Path,
    items: list[dict],
    opts,
    model_name: str,
    method: str | None = None,
) -> list[dict]:
    """Rows ``{group, nodes, only_pa_delta, only_max_dev, without_pa_delta, without_max_dev}``.

    ``cache``: the ranges of ``fp32_path`` (PTQ with ``opts.method``, or a QAT run's matched
    ranges with ``method="minmax"``): every group graph is written from them, none recalibrated.
    """
    from tqdm import tqdm

    from hmrt.calib.precision_report import (
        batched_outputs,
        max_deviation_mm,
        pa_mpjpe_mm,
        root_relative_joints,
    )
    from hmrt.calib.qdq import QuantizeOptions, quantize_to_qdq

    images = np.stack([it["image"] for it in items])
    gt = root_relative_joints(items)
    ref = batched_outputs(fp32_path, images, opts.threads, opts.batch)
    ref_pa = pa_mpjpe_mm(ref["joints3d"], gt)
    rows = []
    groups = quantizable_groups(fp32_path, model_name)
    with tempfile.TemporaryDirectory(prefix="hmrt_sens_") as tmp:
        for group in tqdm(groups, desc="group sensitivity", disable=not opts.progress, leave=False):
            row: dict = {"group": group}
            for mode, kwargs in (
                ("only", {"only_groups": (group,)}),
                ("without", {"exclude_groups": (group,)}),
            ):
                out = Path(tmp) / f"{group}_{mode}.onnx"
                options = QuantizeOptions(method=method or opts.method, **kwargs)
                result = quantize_to_qdq(fp32_path, out, None, options, "cache", cache, False)
                pred = batched_outputs(out, images, opts.threads, opts.batch)
                row[f"{mode}_pa_delta"] = pa_mpjpe_mm(pred["joints3d"], gt) - ref_pa
                row[f"{mode}_max_dev"] = max_deviation_mm(pred["vertices"], ref["vertices"])
                if mode == "only":
                    row["nodes"] = len(result.quantized_nodes)
            rows.append(row)
    return rows
