"""The precision report: its markdown, the BENCHMARKS.md subsection, and (slow) a real run."""

from __future__ import annotations

import pytest

from hmrt.calib.latency import Latency
from hmrt.calib.precision_report import (
    INT8_CPU,
    INT8_TRT,
    INT8_TRT_CPU,
    PrecisionReport,
    ReportOptions,
    Row,
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
    met = _report(51.0, 7.5)
    assert met.targets_met
    text = format_markdown(met, "hmrt eval --precision-report --model danet", "2026-11-21")
    assert "`hmrt eval --precision-report --model danet`" in text and "2026-11-21" in text
    assert "TensorRT Q/DQ graph +1.00 mm (met)" in text and "1.60x (met)" in text
    assert "58 QLinearConv, 36 float Conv" in text
    assert "| backbone.s1 | 2.00 | 1.00 |" in text
    assert "pending the trained weights" not in text
    missed = _report(54.5, 10.0)
    assert not missed.targets_met
    text = format_markdown(missed, "cmd", "2026-11-21")
    assert "+4.50 mm (missed)" in text and "1.20x (missed)" in text
    missed.final_weights = False
    assert "pending the trained weights" in format_markdown(missed, "cmd", "2026-11-21")


@pytest.mark.slow
def test_precision_report_end_to_end(tmp_path):
    """A real (tiny) report: random-init DaNet-edge on 8 synth-val frames (about 2 minutes)."""
    from hmrt.cli import main

    md = tmp_path / "BENCH.md"
    md.write_text(DOC)
    code = main([
        "eval", "--precision-report", "--model", "danet", "--variant", "edge", "--random-init",
        "--n", "8", "--calib-n", "8", "--latency-runs", "3", "--sensitivity",
        "--sensitivity-n", "4", "--write-benchmarks", str(md), "--no-progress",
    ])  # fmt: skip
    assert code == 0
    text = md.read_text()
    assert "### Precision report (DaNet-edge)" in text and "their table" in text
    assert "| INT8 (TensorRT Q/DQ) |" in text and "| local_streams |" in text
