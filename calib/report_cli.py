"""``hmrt eval --precision-report``: its flags, the markdown table, and the BENCHMARKS.md section.

``hmrt eval`` (:mod:`hmrt.commands.eval`) registers these flags with :func:`add_report_arguments`
and hands over to :func:`hmrt.export.precision_report.run_report`, which loads the model, exports
its graphs and prints :func:`format_markdown`. ``--write-benchmarks`` replaces only the subsection
``### Precision report (DaNet-edge)`` under ``## Export and precision`` of docs/BENCHMARKS.md
(atomically, :func:`replace_subsection`), so anyone can rerun the command and refresh the numbers.
"""

from __future__ import annotations

import argparse
from pathlib import Path

SECTION = "## Export and precision"
PRECISION_SECTION = "## Measured (details and commands in docs/BENCHMARKS.md)"
"""Where ``--write-benchmarks`` / ``--write-precision`` put the report's subsection."""


PRETTY = {
    "danet": "DaNet",
    "decomr": "DecoMR",
    "hkmr": "HKMR",
    "bobw": "BoBW",
    "hemlets": "HEMlets",
}


def pretty_name(model: str, variant: str) -> str:
    """``DaNet-edge`` for danet/edge (the papers' spelling)."""
    return f"{PRETTY.get(model, model)}-{variant}"


def subsection_title(model: str, variant: str) -> str:
    """``### Precision report (DaNet-edge)`` for danet/edge."""
    return f"### Precision report ({pretty_name(model, variant)})"


def add_report_arguments(p: argparse.ArgumentParser) -> None:
    """The ``--precision-report`` flags (light: no heavy imports)."""
    g = p.add_argument_group("precision report (FP32 / FP16 / INT8 graphs on synth-val)")
    g.add_argument("--precision-report", action="store_true", help="run the precision report")
    g.add_argument("--model", default=None, help="registry model (with bundled weights)")
    g.add_argument("--variant", default="edge", help="model variant (default edge)")
    g.add_argument("--random-init", action="store_true", help="untrained model (plumbing only)")
    g.add_argument("--n", type=int, default=512, help="synth-val frames to score (default 512)")
    g.add_argument("--calib-data", default="synth", help="INT8 calibration data (default synth)")
    g.add_argument("--calib-n", type=int, default=512, help="calibration crops (default 512)")
    g.add_argument(
        "--method",
        choices=("entropy", "minmax", "percentile"),
        default="minmax",
        help="range rule of the PTQ INT8 rows (default minmax)",
    )
    g.add_argument(
        "--qat-run",
        type=Path,
        default=None,
        metavar="DIR",
        help="a `hmrt calibrate --qat` run folder (qat.pt + qat_ranges.npz): adds the INT8 QAT rows",
    )
    g.add_argument("--float-groups", default="", metavar="G1,G2", help="groups left in float")
    g.add_argument(
        "--roi-pool",
        choices=("grid", "gather", "matmul"),
        default=None,
        help="RoI pooling form of the exported graphs (default grid)",
    )
    g.add_argument("--latency-runs", type=int, default=50, help="timed runs per graph")
    g.add_argument(
        "--sensitivity",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="per-layer-group sensitivity (default: when a target is missed)",
    )
    g.add_argument("--sensitivity-n", type=int, default=128, help="frames for sensitivity runs")
    g.add_argument(
        "--write-benchmarks",
        nargs="?",
        const="docs/BENCHMARKS.md",
        default=None,
        metavar="MD",
        help="write the table into docs/BENCHMARKS.md (or MD)",
    )
    g.add_argument(
        "--write-precision",
        nargs="?",
        const="docs/PRECISION.md",
        default=None,
        metavar="MD",
        help="write the same table into docs/PRECISION.md (or MD), section 'Measured'",
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bars")


def _fmt(v: float | None, spec: str = ".1f") -> str:
    return "-" if v is None else format(v, spec)


def format_markdown(report, command: str, date: str) -> str:
    """The subsection body (without its heading)."""
    from hmrt.calib.precision_report import TARGET_PA_DELTA_MM, TARGET_SPEEDUP
    from hmrt.runtime.stats import machine_line

    o = report.options
    machine = machine_line(keys=("cpu", "cores"))
    fp32 = report.row("FP32").latency
    lines = []
    if not report.final_weights:
        lines += [
            "**Accuracy columns pending the trained weights**: this run used the weights named "
            f"below, not the bundled {pretty_name(report.model, report.variant)} weights; rerun "
            "the command without `--checkpoint` once "
            f"`assets/weights/{report.model}_{report.variant}.pt` exists. Latency does not "
            "depend on the weights.",
            "",
        ]
    lines += [
        f"Command: `{command}`. This machine: {machine}, no GPU, shared with other jobs "
        f"(load average {report.load} at the end of the run); {date}. ONNX Runtime CPU, "
        f"{o.threads} intra-op thread(s), batch 1, {o.latency_runs} runs per graph after 5 "
        "warm-up runs, graphs timed round-robin.",
        "",
        f"Weights: {report.weights}. Evaluation: {report.eval_set}. INT8 calibration: "
        f"{report.calibration}. RoI pooling: {o.roi_pool or 'grid'}.",
        "",
        "| graph | how it ran | MPJPE | PA-MPJPE | PVE | max vertex dev. from FP32 | "
        "ORT CPU ms median (p10) | speed-up vs FP32 | verdict |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in report.rows:
        m = r.metrics
        lat = f"{r.latency.median_ms:.1f} ({r.latency.p10_ms:.1f})" if r.latency else "-"
        speed = f"{fp32.median_ms / r.latency.median_ms:.2f}x" if r.latency and fp32 else "-"
        lines.append(
            f"| {r.shown} | {r.how} | {_fmt(m.get('mpjpe'))} | {_fmt(m.get('pa_mpjpe'))} | "
            f"{_fmt(m.get('pve'))} | {_fmt(r.max_dev_mm, '.2f')} | {lat} | {speed} | "
            f"{report.verdict(r.name)} |"
        )
    from hmrt.calib.precision_report import INT8_CPU, INT8_TRT, INT8_TRT_CPU, VERDICT_RULE

    def verdict(ok: bool) -> str:
        return "met" if ok else "missed"

    pa_trt, pa_cpu = report.pa_delta(INT8_TRT), report.pa_delta(INT8_CPU)
    sp_trt, sp_cpu = report.speedup(INT8_TRT_CPU), report.speedup(INT8_CPU)
    lines += [
        "",
        VERDICT_RULE,
        "",
        f"Metrics in mm. Targets ({pretty_name(report.model, report.variant)}): INT8 PA-MPJPE "
        f"within {TARGET_PA_DELTA_MM:g} mm of "
        f"FP32: TensorRT Q/DQ graph {pa_trt:+.2f} mm ({verdict(pa_trt <= TARGET_PA_DELTA_MM)}), "
        f"ORT CPU recipe {pa_cpu:+.2f} mm ({verdict(pa_cpu <= TARGET_PA_DELTA_MM)}). INT8 at "
        f"least {TARGET_SPEEDUP:g}x faster than FP32 in ONNX Runtime on this CPU: TensorRT Q/DQ "
        f"graph in its ORT CPU form {sp_trt:.2f}x ({verdict(sp_trt >= TARGET_SPEEDUP)}), ORT "
        f"CPU recipe {sp_cpu:.2f}x ({verdict(sp_cpu >= TARGET_SPEEDUP)}). The ORT CPU form has "
        "the TensorRT graph's scales, but ORT runs every conv with integer accumulation (and "
        "rounds the float bias to the accumulator grid) where the graph as written (Q/DQ on "
        "the conv inputs only, TensorRT's placement) runs most of them in float in ORT, so rare "
        "int8 roundings flip: largest vertex difference between the "
        f"two {report.cpu_form_max_diff:.2f} mm.",
        "",
        "Kernels ONNX Runtime actually runs (its optimized graph): "
        + "; ".join(_kernel_text(form, k) for form, k in report.int8_kernels.items())
        + ".",
    ]
    if report.time_split:
        names = list(report.time_split)
        groups = sorted(
            {g for split in report.time_split.values() for g in split},
            key=lambda g: -report.time_split[names[0]].get(g, 0.0),
        )
        lines += [
            "",
            "Where the time goes (ONNX Runtime profiler, kernel ms per call by layer group, "
            "minimum of 3 alternating passes of 20 calls; the FP32 islands stay float in every "
            "INT8 graph):",
            "",
            "| group | " + " | ".join(names) + " |",
            "| --- |" + " ---: |" * len(names),
        ]
        for g in groups:
            cells = " | ".join(f"{report.time_split[n].get(g, 0.0):.2f}" for n in names)
            lines.append(f"| {g} | {cells} |")
        totals = " | ".join(f"{sum(report.time_split[n].values()):.2f}" for n in names)
        lines.append(f"| total | {totals} |")
    if report.sensitivity:
        lines += sensitivity_table(
            report.sensitivity,
            f"Per-layer-group sensitivity (first {o.sensitivity_n} frames; ranges reused from "
            "the calibration above; PA-MPJPE change against the FP32 graph on the same frames):",
        )
    if report.qat_sensitivity:
        lines += sensitivity_table(
            report.qat_sensitivity,
            f"The same after QAT (first {o.sensitivity_n} frames; the QAT weights' FP32 export "
            "with the QAT ranges; PA-MPJPE change against that FP32 graph on the same frames):",
        )
    return "\n".join(lines) + "\n"


def sensitivity_table(rows: list[dict], caption: str) -> list[str]:
    """Markdown lines of a per-group sensitivity table (:mod:`hmrt.calib.sensitivity` rows)."""
    lines = [
        "",
        caption,
        "",
        "| group | nodes quantized | only this group int8: PA-MPJPE change | max vertex dev. "
        "| all but this group int8: PA-MPJPE change | max vertex dev. |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in rows:
        lines.append(
            f"| {s['group']} | {s['nodes']} | {s['only_pa_delta']:+.2f} | "
            f"{s['only_max_dev']:.1f} | {s['without_pa_delta']:+.2f} | "
            f"{s['without_max_dev']:.1f} |"
        )
    return lines


def _kernel_text(form: str, k: dict[str, int]) -> str:
    floats = k.get("Conv", 0) + k.get("FusedConv", 0)
    return (
        f"{form}: {k.get('QLinearConv', 0)} QLinearConv, {floats} float Conv, "
        f"{k.get('QLinearAdd', 0)} QLinearAdd, {k.get('QLinearMatMul', 0)} QLinearMatMul, "
        f"{k.get('QuantizeLinear', 0)} Q / {k.get('DequantizeLinear', 0)} DQ, "
        f"{k.get('Clip', 0) + k.get('Relu', 0)} Clip/Relu left"
    )


def replace_subsection(text: str, section: str, title: str, body: str) -> str:
    """``text`` with ``title``'s subsection (under ``section``) replaced by ``body``.

    The subsection ends at the next heading of level 2 or 3. If it does not exist it is appended
    at the end of ``section`` (which is created at the end of the file if missing).
    """
    lines = text.splitlines()
    block = [title, "", *body.rstrip("\n").splitlines(), ""]
    if title in lines:
        start = lines.index(title)
        end = start + 1
        while end < len(lines) and not lines[end].startswith(("## ", "### ")):
            end += 1
        lines[start:end] = block
        return "\n".join(lines) + "\n"
    if section not in lines:
        lines += ["", section, ""]
    start = lines.index(section) + 1
    end = start
    while end < len(lines) and not lines[end].startswith("## "):
        end += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    lines[end:end] = ["", *block]
    return "\n".join(lines).rstrip("\n") + "\n"
