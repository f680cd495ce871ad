"""One table for every precision of a model: accuracy on synth-val and ONNX Runtime CPU latency.

``hmrt eval --precision-report --model danet --variant edge`` (or ``bench/bench_precision.py``)
runs :func:`build_report` on the model's FP32 and FP16 graphs, which the export layer writes
(:mod:`hmrt.export.precision_report`: this module never imports hmrt.export, it is handed the
graphs or a callable that writes them). It calibrates the INT8 Q/DQ graph
(:mod:`hmrt.calib.qdq`) and runs each graph in ONNX Runtime on the first ``n`` synth-val frames
cropped by the runtime's own preprocessing; the metrics are
:func:`hmrt.train.evaluate.evaluate`'s (MPJPE, PA-MPJPE, PVE in mm), plus the largest vertex
deviation from the FP32 graph. How each graph ran is part of the table: ONNX Runtime's CPU
provider has no FP16 kernels for most ops (it computes the FP16 graph in FP32 on FP16-rounded
weights and boundary tensors), and the INT8 graph's latency is measured both as written for
TensorRT and in ONNX Runtime's CPU form (:mod:`hmrt.calib.ort_cpu`, same numbers). When a
DaNet-edge target is missed (INT8 PA-MPJPE within 3 mm of FP32; INT8 at least 1.8x faster than
FP32 on the CPU) the per-layer-group sensitivity (:mod:`hmrt.calib.sensitivity`) is added so
the next step is clear. With ``qat_ranges`` (``--qat-run DIR``) the graph written from a QAT run
(:func:`hmrt.calib.qat_ranges.write_qat_graph` on the FP32 export of its ``qat.pt``) is scored
and timed on the same frames as two more rows. Every row gets a verdict (:func:`row_verdict`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hmrt.calib.latency import Latency

TARGET_PA_DELTA_MM = 3.0
TARGET_FP16_PA_DELTA_MM = 0.5
TARGET_SPEEDUP = 1.8  # issue 12: INT8 at least 1.8x faster than FP32 in ORT CPU
INT8_TRT = "INT8 (TensorRT Q/DQ)"
INT8_TRT_CPU = "INT8 (TensorRT Q/DQ), ORT CPU form"
INT8_CPU = "INT8 (ORT CPU recipe)"
INT8_QAT = "INT8 QAT (TensorRT Q/DQ)"
INT8_QAT_CPU = "INT8 QAT (TensorRT Q/DQ), ORT CPU form"
PTQ_ROWS = (INT8_TRT, INT8_TRT_CPU, INT8_CPU)
QAT_ROWS = (INT8_QAT, INT8_QAT_CPU)
VERDICT_RULE = (
    f"Verdict: a graph is recommended when its PA-MPJPE is within {TARGET_PA_DELTA_MM:g} mm of "
    f"the FP32 graph's (INT8; FP16: {TARGET_FP16_PA_DELTA_MM:g} mm) and it is not slower than "
    "FP32 in ONNX Runtime on this CPU; one that keeps the accuracy but is slower is not "
    "recommended on ONNX Runtime CPU (it may still be the graph for TensorRT, whose speed this "
    f"table does not measure). A recommended INT8 graph under the {TARGET_SPEEDUP:g}x speed "
    "target says so."
)

GraphSource = Mapping[str, Path] | Callable[[Path], Mapping[str, Path]]
"""The FP32 and FP16 graphs of the report: ``{"fp32": path, "fp16": path}``, or a callable that
writes them into the folder it is given and returns that mapping."""


@dataclass
class ReportOptions:
    """What to measure and how."""

    model: str = "danet"
    variant: str = "edge"
    checkpoint: Path | None = None
    random_init: bool = False
    body: str | None = None
    n: int = 512
    calib_data: str = "synth"
    calib_n: int = 512
    method: str = "minmax"
    float_groups: tuple[str, ...] = ()
    roi_pool: str | None = None
    threads: int = 1
    latency_runs: int = 50
    batch: int = 16
    sensitivity: bool | None = None  # None: only when a target is missed
    sensitivity_n: int = 128
    progress: bool = True
    qat_ranges: Path | None = None  # qat_ranges.npz of a QAT run: adds the QAT rows
    qat_calib_n: int = 64  # crops for the fallback ranges of tensors QAT did not observe


@dataclass
class Row:
    """One graph: its metrics (mm), deviation from FP32 (mm) and latency."""

    name: str
    how: str
    metrics: dict[str, float] = field(default_factory=dict)
    max_dev_mm: float | None = None
    latency: Latency | None = None
    label: str = ""  # the name shown in the table (with the range rule); ``name`` when empty

    @property
    def shown(self) -> str:
        """The table's name of the row."""
        return self.label or self.name


def pa_bar_mm(name: str) -> float | None:
    """The PA-MPJPE budget (mm, vs FP32) of row ``name``: 0.5 for FP16, 3 for INT8, else None."""
    if name.startswith("FP16"):
        return TARGET_FP16_PA_DELTA_MM
    if name.startswith("INT8"):
        return TARGET_PA_DELTA_MM
    return None


def row_verdict(row: Row, fp32: Row) -> str:
    """``recommended`` or ``not recommended: <reason>`` for ``row`` against the FP32 graph's row
    (the rule is :data:`VERDICT_RULE`, printed under the table)."""
    if row.name == "FP32":
        return "recommended (reference)"
    bar = pa_bar_mm(row.name)
    if bar is None:
        return "reference"
    pa, ref = row.metrics.get("pa_mpjpe"), fp32.metrics.get("pa_mpjpe")
    if pa is None or ref is None:
        return "not recommended: no accuracy measured"
    delta = pa - ref
    if delta > bar:
        return f"not recommended: PA-MPJPE {delta:+.2f} mm vs FP32 (budget {bar:g} mm)"
    if not (row.latency and fp32.latency):
        return f"recommended: PA-MPJPE {delta:+.2f} mm (speed not measured)"
    speed = fp32.latency.median_ms / row.latency.median_ms
    if speed < 1.0:
        return (
            f"not recommended on ONNX Runtime CPU: {speed:.2f}x FP32's speed "
            f"(accuracy kept, PA-MPJPE {delta:+.2f} mm)"
        )
    text = f"recommended: PA-MPJPE {delta:+.2f} mm, {speed:.2f}x FP32"
    if row.name.startswith("INT8") and speed < TARGET_SPEEDUP:
        text += f" (under the {TARGET_SPEEDUP:g}x target)"
    return text


@dataclass
class PrecisionReport:
    """Everything the markdown section shows."""

    rows: list[Row]
    options: ReportOptions
    weights: str
    final_weights: bool
    eval_set: str
    calibration: str
    int8_kernels: dict[str, dict[str, int]]
    cpu_form_max_diff: float
    load: str
    model: str = "danet"
    variant: str = "edge"
    sensitivity: list[dict] = field(default_factory=list)
    qat_sensitivity: list[dict] = field(default_factory=list)
    time_split: dict[str, dict[str, float]] = field(default_factory=dict)

    def row(self, name: str) -> Row:
        """The row called ``name``."""
        return next(r for r in self.rows if r.name == name)

    def verdict(self, name: str) -> str:
        """:func:`row_verdict` of row ``name``."""
        return row_verdict(self.row(name), self.row("FP32"))

    def pa_delta(self, name: str) -> float:
        """PA-MPJPE of row ``name`` minus FP32's (mm)."""
        return self.row(name).metrics["pa_mpjpe"] - self.row("FP32").metrics["pa_mpjpe"]

    def speedup(self, name: str) -> float:
        """FP32 median latency / row ``name``'s."""
        fp32, other = self.row("FP32").latency, self.row(name).latency
        return fp32.median_ms / other.median_ms if fp32 and other else float("nan")

    @property
    def targets_met(self) -> bool:
        """TensorRT INT8 graph within the PA-MPJPE budget, and an INT8 graph TARGET_SPEEDUP
        times faster on CPU (ORT CPU recipe) that is also within the budget."""
        return (
            self.pa_delta(INT8_TRT) <= TARGET_PA_DELTA_MM
            and self.pa_delta(INT8_CPU) <= TARGET_PA_DELTA_MM
            and self.speedup(INT8_CPU) >= TARGET_SPEEDUP
        )


class Recorder:
    """Wraps a predict function and keeps every ``vertices`` output (for deviations)."""

    def __init__(self, fn):
        self.fn = fn
        self.vertices: list[np.ndarray] = []
        self.joints: list[np.ndarray] = []

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        out = self.fn(images)
        self.vertices.append(np.asarray(out["vertices"], np.float32))
        self.joints.append(np.asarray(out["joints3d"], np.float32))
        return out

    def all_vertices(self) -> np.ndarray:
        """All recorded vertices ``(N, V, 3)``."""
        return np.concatenate(self.vertices)


def ort_predictor(model, threads: int = 1):
    """A numpy predict function over an ONNX Runtime CPU session."""
    from hmrt.calib.latency import cpu_session

    sess = cpu_session(model, threads)
    names = [o.name for o in sess.get_outputs()]
    input_name = sess.get_inputs()[0].name

    def predict(images: np.ndarray) -> dict[str, np.ndarray]:
        outs = sess.run(None, {input_name: np.ascontiguousarray(images, np.float32)})
        return dict(zip(names, outs))

    return predict


def eval_items(n: int, pre, progress: bool = True) -> list[dict]:
    """The first ``n`` synth-val frames, cropped by the runtime's preprocessing, as eval items."""
    from tqdm import tqdm

    from hmrt.train.data.validation import synth_val_frames

    items = []
    frames = synth_val_frames(size=n)
    for f in tqdm(frames, total=n, desc="synth-val crops", disable=not progress, leave=False):
        items.append(
            {
                "image": pre(f["frame"], f["box"]),
                "joints3d": np.asarray(f["joints3d"], np.float32),
                "rotmats": np.asarray(f["rotmats"], np.float32),
                "betas": np.asarray(f["betas"], np.float32),
            }
        )
        if len(items) == n:
            break
    return items


def max_deviation_mm(vertices: np.ndarray, reference: np.ndarray) -> float:
    """Largest per-vertex Euclidean distance between two predictions (mm)."""
    return float(np.linalg.norm(vertices - reference, axis=-1).max() * 1000.0)


def batched_outputs(model, images: np.ndarray, threads: int = 1, batch: int = 16) -> dict:
    """ONNX Runtime CPU outputs of ``model`` (path or ModelProto) over ``images``, by batches."""
    predict = ort_predictor(model, threads)
    parts = [predict(images[i : i + batch]) for i in range(0, len(images), batch)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def root_relative_joints(items: list[dict]) -> np.ndarray:
    """Ground-truth joints of eval items, root-relative, float64 ``(N, 24, 3)``."""
    gt = np.stack([it["joints3d"] for it in items]).astype(np.float64)
    return gt - gt[:, :1]


def pa_mpjpe_mm(joints: np.ndarray, gt: np.ndarray) -> float:
    """Mean PA-MPJPE (mm) of predicted joints against root-relative ``gt``."""
    from hmrt.runtime import metrics as M

    pred = joints.astype(np.float64)
    return float(np.mean(M.pa_mpjpe(pred - pred[:, :1], gt)))


QAT_CACHE = "qat_ranges.json"
"""File name, in the report's folder, of the QAT run's matched ranges (a minmax cache)."""


def qat_graphs(qat_fp32: Path, opts: ReportOptions, folder: Path) -> tuple[dict, str]:
    """The QAT rows' graphs: ``{INT8_QAT: Q/DQ ModelProto, INT8_QAT_CPU: its ORT CPU form}``
    written from ``opts.qat_ranges`` onto ``qat_fp32`` (the FP32 export of the run's ``qat.pt``)
    by the same writer as ``hmrt calibrate --qat-ranges``, and a line on how the ranges matched;
    the matched ranges stay in ``folder / QAT_CACHE``. Empty when the report has no QAT run."""
    if opts.qat_ranges is None:
        return {}, ""
    import onnx

    from hmrt.calib.ort_cpu import uint8_activations
    from hmrt.calib.qat_ranges import write_qat_graph

    out = folder / "int8_qat_tensorrt.onnx"
    result, match, data = write_qat_graph(
        qat_fp32,
        opts.qat_ranges,
        out,
        opts.calib_data,
        opts.qat_calib_n,
        body=opts.body,
        progress=opts.progress,
        cache_out=folder / QAT_CACHE,
    )
    model = onnx.load(str(result.path))
    cpu_form, _ = uint8_activations(model)
    step = result.metadata.get("hmrt.int8_qat_step", "?")
    text = (
        f"QAT: `{_display_path(opts.qat_ranges)}` (step {step}) on the FP32 export of the run's "
        f"qat.pt; {len(match.matched)} tensors took their QAT range, "
        f"{len(match.fallback_quantized)} quantized ones the minmax range on {data}"
    )
    return {INT8_QAT: model, INT8_QAT_CPU: cpu_form}, text


def build_report(source, opts: ReportOptions, graphs: GraphSource) -> PrecisionReport:
    """Calibrate, evaluate and time the graphs of ``source``; see the module docstring.

    ``source``: the loaded torch model and its provenance (``model``, ``name``, ``variant``,
    ``weights``, ``weights_path``: :class:`hmrt.export.model_source.ModelSource`), scored as the
    "torch FP32" reference row. ``graphs``: its FP32 and FP16 ONNX files (:data:`GraphSource`),
    and ``qat_fp32`` (the FP32 export of a QAT run's ``qat.pt``) when ``opts.qat_ranges`` is set.
    """
    import onnx

    from hmrt.calib.cli import calibrate
    from hmrt.calib.data import preprocessor_from_onnx
    from hmrt.calib.latency import load_average, measure_latency
    from hmrt.calib.ort_cpu import optimized_op_counts, uint8_activations
    from hmrt.calib.qdq import QuantizeOptions, quantize_to_qdq
    from hmrt.train.evaluate import evaluate, gt_body_layer, torch_predictor

    with tempfile.TemporaryDirectory(prefix="hmrt_precision_") as tmp:
        folder = Path(tmp)
        paths = {k: Path(v) for k, v in (graphs(folder) if callable(graphs) else graphs).items()}
        paths["int8"] = folder / "int8_tensorrt.onnx"
        paths["int8_cpu"] = folder / "int8_onnxruntime_cpu.onnx"
        cache = folder / "ranges.json"
        result = calibrate(
            paths["fp32"],
            paths["int8"],
            opts.calib_data,
            opts.calib_n,
            opts.method,
            float_groups=opts.float_groups,
            body=opts.body,
            cache=cache,
            progress=opts.progress,
        )
        quantize_to_qdq(
            paths["fp32"],
            paths["int8_cpu"],
            None,
            QuantizeOptions(
                method=opts.method, target="onnxruntime-cpu", exclude_groups=opts.float_groups
            ),
            result.metadata["hmrt.int8_calib_data"],
            cache,
            False,
        )
        int8_model = onnx.load(str(paths["int8"]))
        cpu_form, _ = uint8_activations(int8_model)
        cpu_recipe = onnx.load(str(paths["int8_cpu"]))
        qat, qat_text = qat_graphs(paths.get("qat_fp32"), opts, folder)
        pre = preprocessor_from_onnx(paths["fp32"])
        items = eval_items(opts.n, pre, opts.progress)
        recorders = {
            "torch FP32": Recorder(torch_predictor(source.model)),
            "FP32": Recorder(ort_predictor(paths["fp32"], opts.threads)),
            "FP16": Recorder(ort_predictor(paths["fp16"], opts.threads)),
            INT8_TRT: Recorder(ort_predictor(int8_model, opts.threads)),
            INT8_TRT_CPU: Recorder(ort_predictor(cpu_form, opts.threads)),
            INT8_CPU: Recorder(ort_predictor(cpu_recipe, opts.threads)),
            **{name: Recorder(ort_predictor(m, opts.threads)) for name, m in qat.items()},
        }
        scores = evaluate(
            recorders,
            items,
            body=gt_body_layer(source.model),  # DecoMR/BoBW: built from the model's body file
            batch_size=opts.batch,
            baseline=False,
            progress=opts.progress,
        )
        probe = np.stack([it["image"] for it in items[: opts.batch]])
        cpu_diff = max_deviation_mm(
            recorders[INT8_TRT_CPU].all_vertices(), recorders[INT8_TRT].all_vertices()
        )
        latency = measure_latency(
            {
                "FP32": paths["fp32"],
                "FP16": paths["fp16"],
                INT8_TRT: int8_model,
                INT8_TRT_CPU: cpu_form,
                INT8_CPU: cpu_recipe,
                **qat,
            },
            probe[:1],
            opts.threads,
            opts.latency_runs,
        )
        time_split = time_by_group(
            {"FP32": paths["fp32"], INT8_TRT_CPU: cpu_form, INT8_CPU: cpu_recipe},
            probe[:1],
            source.name,
            opts.threads,
        )
        kernels = {
            INT8_TRT: optimized_op_counts(int8_model, opts.threads),
            INT8_TRT_CPU: optimized_op_counts(cpu_form, opts.threads),
            INT8_CPU: optimized_op_counts(cpu_recipe, opts.threads),
            **{name: optimized_op_counts(m, opts.threads) for name, m in qat.items()},
        }
        ref = recorders["FP32"].all_vertices()
        hows = {
            "torch FP32": "PyTorch eval mode (reference)",
            "FP32": "ONNX Runtime CPU, FP32 graph",
            "FP16": "ONNX Runtime CPU on the FP16 graph (no FP16 CPU kernels: FP16-rounded "
            "weights and boundaries, most math in FP32)",
            INT8_TRT: "ONNX Runtime CPU on the Q/DQ graph as written for TensorRT (Q/DQ on "
            "conv inputs only: ORT runs most convs in float on dequantized inputs)",
            INT8_TRT_CPU: "the same Q/DQ graph, Qs moved up to the convs, uint8 codes, ReLU6 "
            "as integer Clip (same values; ORT's integer kernels)",
            INT8_CPU: "ORT's CPU recipe from the same ranges (uint8, ReLU folded; not for "
            "TensorRT)",
            INT8_QAT: "ONNX Runtime CPU on the Q/DQ graph of the QAT weights with the QAT ranges "
            "(same writer and structure as the PTQ Q/DQ graph)",
            INT8_QAT_CPU: "the same QAT graph in ORT's CPU form (as for the PTQ graph)",
        }
        rows = [
            Row(
                name,
                hows[name],
                scores.metrics[name],
                max_deviation_mm(rec.all_vertices(), ref),
                latency.get(name),
                row_label(name, opts.method),
            )
            for name, rec in recorders.items()
        ]
        report = PrecisionReport(
            rows=rows,
            options=opts,
            model=source.name,
            variant=source.variant,
            weights=_weights_text(source),
            final_weights=source.weights == "bundled",
            eval_set=f"synth-val[0:{len(items)}] (runtime preprocessing of the full frames)",
            calibration=(
                f"{result.metadata['hmrt.int8_calib_data']}, {opts.method}, per-channel int8 "
                f"weights, symmetric int8 activations; {len(result.quantized_nodes)} nodes read "
                f"int8; float: FP32 islands ({len(result.plan.islands)} nodes) and heads "
                f"{_counted(_short(h) for h in result.plan.heads)}"
                + (f"; float groups: {', '.join(opts.float_groups)}" if opts.float_groups else "")
                + (f". {qat_text}" if qat_text else "")
            ),
            int8_kernels=kernels,
            cpu_form_max_diff=cpu_diff,
            load=load_average(),
            time_split=time_split,
        )
        want = opts.sensitivity if opts.sensitivity is not None else not report.targets_met
        if want:
            from hmrt.calib.sensitivity import group_sensitivity

            report.sensitivity = group_sensitivity(
                paths["fp32"], cache, items[: opts.sensitivity_n], opts, source.name
            )
            if qat:  # the same table on the QAT weights and ranges (issue: "after QAT")
                report.qat_sensitivity = group_sensitivity(
                    paths["qat_fp32"],
                    folder / QAT_CACHE,
                    items[: opts.sensitivity_n],
                    opts,
                    source.name,
                    method="minmax",
                )
    return report


def row_label(name: str, method: str) -> str:
    """The table's name of row ``name``: INT8 rows say which range rule made them (PTQ with
    ``method``, or QAT ranges)."""
    if name in PTQ_ROWS:
        return name.replace("INT8", f"INT8 PTQ {method}", 1)
    if name in QAT_ROWS:
        return name.replace("INT8 QAT", "INT8 QAT ranges", 1)
    return name


def node_group(model_name: str, node_name: str) -> str:
    """Report group of a node: its FP32 island, its layer group, or ``other``."""
    from hmrt.calib.qdq_plan import layer_group
    from hmrt.runtime.graph_islands import island_of

    island = island_of(node_name)
    if island is not None:
        return f"FP32 island {island}"
    return layer_group(model_name, node_name) or "other"


def time_by_group(
    models: dict, image: np.ndarray, model_name: str, threads: int = 1, rounds: int = 3
) -> dict[str, dict[str, float]]:
    """ORT profiler kernel ms per group for each graph: the minimum over ``rounds`` alternating
    passes (a shared machine inflates single passes unevenly)."""
    from hmrt.calib.latency import profile_groups

    best: dict[str, dict[str, float]] = {name: {} for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            split = profile_groups(model, image, lambda n: node_group(model_name, n), threads)
            for group, ms in split.items():
                best[name][group] = min(ms, best[name].get(group, float("inf")))
    return best


def _counted(names) -> str:
    """``a, b (x3), c``: each name once, in first-seen order, with its count when repeated."""
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    return ", ".join(n if c == 1 else f"{n} (x{c})" for n, c in counts.items())


def _short(node_name: str) -> str:
    parts = [p for p in node_name.split("/") if p and p != "model"]
    return "/".join(parts[-3:-1]) if len(parts) > 2 else node_name


def _display_path(path) -> str:
    """``path`` relative to the working directory when inside it (reports are committed)."""
    from pathlib import Path

    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


def _weights_text(source) -> str:
    if source.weights == "random-init":
        return "random init (untrained: accuracy columns are not meaningful)"
    text = f"{source.weights} `{_display_path(source.weights_path)}`"
    try:
        from hmrt.runtime.cache import file_sha256
        from hmrt.train.checkpoint import read_checkpoint

        pos = read_checkpoint(source.weights_path).get("position") or {}
        text += f" (sha256 {file_sha256(source.weights_path)[:12]}"
        if pos.get("step") is not None:
            text += f", training step {pos['step']} of {pos.get('total_steps', '?')}"
        text += ")"
    except Exception:  # the table stays useful without the provenance details
        pass
    return text
