"""The precision report: its markdown, the BENCHMARKS.md subsection, and (slow) a real run."""

from __future__ import annotations

import pytest

from hmrt.calib.latency import Latency
from hmrt.calib.precision_report import (
    INT8_CPU,
    INT8_QAT,
    INT8_QAT_CPU,
    INT8_TRT,
    INT8_TRT_CPU,
    VERDICT_RULE,
    PrecisionReport,
    ReportOptions,
    Row,
    row_label,
    row_verdict,
)
from hmrt.calib.report_cli import SECTION, format_markdown, replace_subsection

DOC = """# Benchmarks

## Models

model text

## Export and precision

### FP16 parity (export engineer)

their table

## Runtime

runtime text
"""


def test_subsection_is_inserted_then_replaced_leaving_the_rest_alone():
    title = "### Precision report (DaNet-edge)"
    once = replace_subsection(DOC, SECTION, title, "first body\n")
    assert once.index("their table") < once.index(title) < once.index("## Runtime")
    assert "first body" in once
    twice = replace_subsection(once, SECTION, title, "second body\n| a | b |\n")
    assert "first body" not in twice and "second body" in twice
    assert twice.count(title) == 1
    for kept in ("model text", "### FP16 parity (export engineer)", "their table", "runtime text"):
        assert kept in twice
    fresh = replace_subsection("# Benchmarks\n", SECTION, title, "body\n")
    assert fresh.index(SECTION) < fresh.index(title) < fresh.index("body")


def _report(int8_pa: float, int8_ms: float) -> PrecisionReport:
    def row(name, pa, ms):
        return Row(
            name, "how", {"mpjpe": 80.0, "pa_mpjpe": pa, "pve": 95.0}, 1.5, Latency(ms, ms, 10)
        )

    rows = [
        row("FP32", 50.0, 12.0),
        row("FP16", 50.1, 20.0),
        row(INT8_TRT, int8_pa, 14.0),
        row(INT8_TRT_CPU, int8_pa, 12.0),
        row(INT8_CPU, int8_pa + 0.5, int8_ms),
    ]
    kernels = {INT8_TRT: {"QLinearConv": 58, "Conv": 36}}
    split = {"FP32": {"backbone.s1": 2.0}, INT8_CPU: {"backbone.s1": 1.0}}
    return PrecisionReport(
        rows, ReportOptions(), "bundled (x.pt)", True, "synth-val[0:512]", "synth", kernels,
        0.0, "1.0", time_split=split,
    )  # fmt: skip


def test_markdown_states_targets_how_graphs_ran_and_kernels():
    met = _report(51.0, 6.0)
    assert met.targets_met
    text = format_markdown(met, "hmrt eval --precision-report --model danet", "2026-11-21")
    assert "`hmrt eval --precision-report --model danet`" in text and "2026-11-21" in text
    assert "TensorRT Q/DQ graph +1.00 mm (met)" in text and "2.00x (met)" in text
    assert "58 QLinearConv, 36 float Conv" in text
    assert "| backbone.s1 | 2.00 | 1.00 |" in text
    assert "pending the trained weights" not in text
    missed = _report(54.5, 10.0)
    assert not missed.targets_met
    text = format_markdown(missed, "cmd", "2026-11-21")
    assert "+4.50 mm (missed)" in text and "1.20x (missed)" in text
    missed.final_weights = False
    assert "pending the trained weights" in format_markdown(missed, "cmd", "2026-11-21")


def _row(name: str, pa: float, ms: float | None) -> Row:
    latency = Latency(ms, ms, 10) if ms is not None else None
    return Row(name, "how", {"pa_mpjpe": pa}, None, latency)


def test_verdict_rule_on_hand_made_rows():
    """Accuracy budget first (INT8 3 mm, FP16 0.5 mm vs FP32), then speed in ORT vs FP32."""
    fp32 = _row("FP32", 50.0, 10.0)
    assert row_verdict(fp32, fp32) == "recommended (reference)"
    assert row_verdict(_row("torch FP32", 49.0, None), fp32) == "reference"
    ok = row_verdict(_row(INT8_CPU, 52.9, 5.0), fp32)
    assert ok == "recommended: PA-MPJPE +2.90 mm, 2.00x FP32"
    slow_target = row_verdict(_row(INT8_CPU, 51.0, 8.0), fp32)
    assert slow_target.startswith("recommended") and "under the 1.8x target" in slow_target
    bad = row_verdict(_row(INT8_TRT, 53.5, 5.0), fp32)
    assert bad == "not recommended: PA-MPJPE +3.50 mm vs FP32 (budget 3 mm)"
    slower = row_verdict(_row(INT8_QAT, 50.5, 12.5), fp32)
    assert slower.startswith("not recommended on ONNX Runtime CPU: 0.80x FP32's speed")
    assert row_verdict(_row("FP16", 50.6, 9.0), fp32).startswith("not recommended: PA-MPJPE +0.60")
    assert row_verdict(_row("FP16", 50.4, 9.0), fp32).startswith("recommended")
    assert "speed not measured" in row_verdict(_row(INT8_CPU, 50.0, None), fp32)


def test_int8_row_labels_name_their_range_rule():
    assert row_label(INT8_TRT, "minmax") == "INT8 PTQ minmax (TensorRT Q/DQ)"
    assert row_label(INT8_CPU, "entropy") == "INT8 PTQ entropy (ORT CPU recipe)"
    assert row_label(INT8_QAT_CPU, "minmax") == "INT8 QAT ranges (TensorRT Q/DQ), ORT CPU form"
    assert row_label("FP16", "minmax") == "FP16" and ReportOptions().method == "minmax"


def test_markdown_has_a_verdict_for_every_row_and_the_qat_rows():
    report = _report(51.0, 7.5)
    report.rows += [
        Row(INT8_QAT, "qat", {"pa_mpjpe": 50.5}, 1.0, Latency(15.0, 15.0, 10), "INT8 QAT ranges"),
    ]
    text = format_markdown(report, "cmd", "2026-12-06")
    assert VERDICT_RULE in text and "| verdict |" in text
    rows = [line for line in text.splitlines() if line.startswith(("| FP", "| INT8"))]
    assert len(rows) == 6
    assert all("recommended" in line for line in rows)
    qat = next(line for line in rows if line.startswith("| INT8 QAT ranges |"))
    assert qat.endswith("not recommended on ONNX Runtime CPU: 0.80x FP32's speed "
                        "(accuracy kept, PA-MPJPE +0.50 mm) |")  # fmt: skip


def test_qat_rows_are_written_from_a_qat_range_file(tmp_path):
    """A QAT range file (observers recorded on a probe, here the FP32 graph's own tensors) gives
    the two QAT graphs by the same writer as ``hmrt calibrate --qat-ranges``; they run."""
    import numpy as np
    import onnx
    from calib_helpers import danet_edge_fp32, parts_body, synth_crops

    from hmrt.calib.precision_report import batched_outputs, qat_graphs
    from hmrt.calib.qat_ranges import probe_onnx, save_observed
    from hmrt.calib.qdq import CALIBRATED_OP_TYPES
    from hmrt.calib.ranges import tensors_to_calibrate

    fp32 = danet_edge_fp32()
    probe = synth_crops()[:2]
    names = tensors_to_calibrate(onnx.load(str(fp32)), CALIBRATED_OP_TYPES)
    seen = probe_onnx(onnx.load(str(fp32)), names, probe)
    ranges = {n: (float(np.abs(v).max()), float(v.min()), float(v.max())) for n, v in seen.items()}
    npz = save_observed(tmp_path / "qat_ranges.npz", ranges, seen, probe, step=2)
    assert qat_graphs(fp32, ReportOptions(), tmp_path) == ({}, "")
    opts = ReportOptions(qat_ranges=npz, qat_calib_n=2, body=str(parts_body()), progress=False)
    graphs, text = qat_graphs(fp32, opts, tmp_path)
    assert set(graphs) == {INT8_QAT, INT8_QAT_CPU}
    assert "(step 2)" in text and " 0 quantized ones the minmax range" in text
    ref = batched_outputs(fp32, probe)["joints3d"]
    for model in graphs.values():
        out = batched_outputs(model, probe)["joints3d"]
        assert out.shape == ref.shape and np.isfinite(out).all()
    # The matched ranges stay behind as a minmax cache of the QAT FP32 graph: the sensitivity
    # after QAT writes its one-group graphs from it without recalibrating (no crops passed).
    from hmrt.calib.precision_report import QAT_CACHE
    from hmrt.calib.qdq import QuantizeOptions, quantize_to_qdq
    from hmrt.calib.sensitivity import quantizable_groups

    group = quantizable_groups(fp32, "danet")[0]
    options = QuantizeOptions(method="minmax", only_groups=(group,))
    one = quantize_to_qdq(fp32, tmp_path / "one.onnx", None, options, "", tmp_path / QAT_CACHE)
    assert one.quantized_nodes and np.isfinite(batched_outputs(one.path, probe)["joints3d"]).all()


def test_qat_run_without_its_files_is_one_line(tmp_path, capsys):
    from hmrt.cli import main

    code = main(["eval", "--precision-report", "--model", "danet", "--qat-run", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert "--qat-run" in err and "qat.pt or qat_ranges.npz" in err


@pytest.mark.slow
def test_precision_report_end_to_end(tmp_path):
    """A real (tiny) report: random-init DaNet-edge on 8 synth-val frames (about 2 minutes)."""
    from hmrt.cli import main

    md = tmp_path / "BENCH.md"
    md.write_text(DOC)
    prec = tmp_path / "PRECISION.md"
    prec.write_text("# Precision\n\n## How\n\nkept\n")
    code = main([
        "eval", "--precision-report", "--model", "danet", "--variant", "edge", "--random-init",
        "--n", "8", "--calib-n", "8", "--latency-runs", "3", "--sensitivity",
        "--sensitivity-n", "4", "--write-benchmarks", str(md), "--write-precision", str(prec),
        "--no-progress",
    ])  # fmt: skip
    assert code == 0
    text = md.read_text()
    assert "### Precision report (DaNet-edge)" in text and "their table" in text
    assert "| INT8 PTQ minmax (TensorRT Q/DQ) |" in text and "| local_streams |" in text
    both = prec.read_text()  # the same table in PRECISION.md's "Measured" section
    assert "kept" in both and "## Measured" in both and "| local_streams |" in both
    assert both.split("### Precision report (DaNet-edge)")[1] in text
