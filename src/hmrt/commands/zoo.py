"""``hmrt zoo`` (= ``python bench/bench_zoo.py``): one table for every registered model/variant.

Columns: parameters used at inference and GFLOPs (``hmrt model info``), the deployment forms
(which export rewrites apply), ONNX Runtime vs PyTorch parity of the default export, the FP16
and INT8 PA-MPJPE change, ONNX Runtime CPU latency at batch 1, and synth-val accuracy. Accuracy
columns need trained weights, so they are filled only for a variant with bundled weights
(``assets/weights/<model>_<variant>.pt``); the others say "no bundled weights" and their parity
and latency use a seeded random init (neither depends on training). INT8 comes from the
precision report (minutes per model): the table points at docs/PRECISION.md instead of
re-running it.

Every cell is cached in ``--cache`` (JSON) under a fingerprint of what it depends on (hmrt and
library versions, weights, body, crop counts, and for latency the machine), so a rerun is cheap
and a new model adds only its own rows. ``--quick`` measures params, GFLOPs, forms, parity and
latency only; ``--rows danet:edge ...`` limits the rows measured now (cached rows still print).

Every later model adds its rows by registering itself (``hmrt.train.models.registry``).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEFAULT_CACHE = Path("runs/zoo_cache.json")
NO_WEIGHTS = "no bundled weights"
INT8_DOC = "see docs/PRECISION.md"
QUICK_COLUMNS = ("params", "gflops", "forms", "parity", "latency")
ALL_COLUMNS = (*QUICK_COLUMNS, "fp16", "int8", "accuracy")
FORMS = (  # layer class (module path, name) -> the export flag that picks its deployment form
    ("hmrt.train.models.layers.roi_pool", "GridRoIPool", "roi-pool grid|gather|matmul"),
    ("hmrt.train.models.layers.uv_scatter", "UVScatterMean", "uv-scatter add|matmul"),
    ("hmrt.train.models.layers.uv_sample", "UVToVertices", "uv-sample gather|grid"),
    ("hmrt.train.models.hkmr.regressor", "JointHeads", "hkmr-fold on|off"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``hmrt zoo``."""
    parser.add_argument(
        "--rows", nargs="+", default=None, metavar="MODEL:VARIANT", help="rows to measure now"
    )
    parser.add_argument("--quick", action="store_true", help="only " + ", ".join(QUICK_COLUMNS))
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="cell cache (JSON)")
    parser.add_argument(
        "--refresh", action="store_true", help="re-measure the chosen rows (ignore their cache)"
    )
    parser.add_argument("--crops", type=int, default=8, help="crops for parity and FP16")
    parser.add_argument("--val", type=int, default=512, help="synth-val scenes for accuracy")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    parser.add_argument("--seconds", type=float, default=5.0, help="timing per latency cell")
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")


def registered_rows() -> list[tuple[str, str]]:
    """``(model, variant)`` for every registered model and variant, in registry order."""
    from hmrt.train.models.registry import get_entry, list_models

    return [(m, v) for m in list_models() for v in get_entry(m).variants]


def bundled_weights(name: str, variant: str) -> Path | None:
    """The bundled checkpoint of ``name``/``variant``, or None."""
    from hmrt.assets import asset_path

    path = asset_path(f"weights/{name}_{variant}.pt")
    return path if path.is_file() else None


def deployment_forms(model) -> str:
    """Export flags whose layers the model has (``-`` if it exports in one form only)."""
    import importlib

    classes = [
        (getattr(importlib.import_module(mod), cls), flag) for mod, cls, flag in FORMS
    ]  # fmt: skip
    found = [flag for cls, flag in classes if any(isinstance(m, cls) for m in model.modules())]
    return "; ".join(found) or "-"


def ort_latency_ms(path: Path, size: tuple[int, int], threads: int, seconds: float) -> float:
    """Median ONNX Runtime CPU wall time (ms) at batch 1 after 3 warm-up runs."""
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    feed = {"image": np.random.default_rng(0).standard_normal((1, 3, *size), np.float32)}
    for _ in range(3):
        sess.run(None, feed)
    times: list[float] = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 5:
        t = time.perf_counter()
        sess.run(None, feed)
        times.append(1000 * (time.perf_counter() - t))
    return statistics.median(times)


class Row:
    """One model/variant: builds the model lazily and computes the cells it is asked for."""

    def __init__(self, name: str, variant: str, args: argparse.Namespace):
        self.name, self.variant, self.args = name, variant, args
        self.weights = bundled_weights(name, variant)
        self._model = None
        self._onnx: Path | None = None
        self._tmp = tempfile.TemporaryDirectory()

    @property
    def model(self):
        """The model with the bundled weights, else seeded random weights (eval mode)."""
        if self._model is None:
            import torch

            from hmrt.train.checkpoint import load_checkpoint
            from hmrt.train.models import build

            torch.manual_seed(0)
            if self.weights is not None:
                self._model = load_checkpoint(self.weights)
            else:
                self._model = build(self.name, self.variant).eval()
        return self._model

    def onnx(self) -> Path:
        """The default FP32 export (opset 17, TensorRT 10 forms), written once per run."""
        if self._onnx is None:
            from hmrt.export.onnx_export import ExportOptions, export_model

            path = Path(self._tmp.name) / f"{self.name}_{self.variant}.onnx"
            export_model(self.model, path, self.name, self.variant, ExportOptions())
            self._onnx = path
        return self._onnx

    def size(self) -> tuple[int, int]:
        """The model's input ``(H, W)``."""
        return tuple(int(v) for v in self.model.config.input_size)

    def cell(self, column: str) -> dict[str, Any]:
        """Compute one column's value (a small JSON-able dict)."""
        return getattr(self, f"_{column}")()

    def _params(self) -> dict[str, Any]:
        return {"value": self.model.parameter_counts()["inference"]}

    def _gflops(self) -> dict[str, Any]:
        from hmrt.train.models.flops import count_flops

        return {"value": count_flops(self.model).total / 1e9}

    def _forms(self) -> dict[str, Any]:
        return {"value": deployment_forms(self.model)}

    def _parity(self) -> dict[str, Any]:
        from hmrt.export.parity import max_abs_diff, ort_outputs, torch_outputs, validation_crops

        data = validation_crops(self.args.crops, self.size())
        diff = max_abs_diff(
            torch_outputs(self.model, data.images, 2), ort_outputs(self.onnx(), data.images, 2)
        )
        return {"value": diff.get("vertices"), "crops": data.source}

    def _latency(self) -> dict[str, Any]:
        ms = ort_latency_ms(self.onnx(), self.size(), self.args.threads, self.args.seconds)
        return {"value": ms, "threads": self.args.threads}

    def _fp16(self) -> dict[str, Any]:
        if self.weights is None:
            return {"value": NO_WEIGHTS}
        from hmrt.export.fp16_report import fp16_report

        report = fp16_report(self.model, self.name, self.variant, self.args.crops)
        change = report["ort fp16 graph"].get("pa_mpjpe_change_mm")
        return {"value": change, "crops": report["crops"]}

    def _int8(self) -> dict[str, Any]:
        return {"value": INT8_DOC if self.weights is not None else NO_WEIGHTS}

    def _accuracy(self) -> dict[str, Any]:
        if self.weights is None:
            return {"value": NO_WEIGHTS}
        from hmrt.train.evaluate import evaluate, gt_body_layer, torch_predictor
        from hmrt.train.sources import eval_dataset

        # what `hmrt eval --checkpoint W --data synth-val --samples N` does (same numbers)
        data = eval_dataset("synth-val", self.model, self.args.val, None)
        result = evaluate(
            {"m": torch_predictor(self.model)},
            data,
            body=gt_body_layer(self.model),
            max_samples=self.args.val,
            baseline=False,
            progress=False,
        )
        metrics = result.metrics["m"]
        return {"value": metrics.get("pa_mpjpe"), "metrics": metrics}


def fingerprint(row: Row, column: str, machine: str) -> str:
    """What a cell depends on, hashed: code and library versions, the variant's config preset,
    weights, options, machine."""
    import onnxruntime
    import torch

    from hmrt import __version__
    from hmrt.train.models.registry import get_entry

    preset = get_entry(row.name).variants[row.variant]()  # a changed preset is a new row
    parts = [__version__, torch.__version__, onnxruntime.__version__, row.name, row.variant]
    parts.append(repr(preset))
    if row.weights is not None:
        parts.append(hashlib.sha256(row.weights.read_bytes()).hexdigest())
    parts += {
        "parity": [str(row.args.crops)],
        "fp16": [str(row.args.crops)],
        "accuracy": [str(row.args.val)],
        "latency": [machine, str(row.args.threads), str(row.args.seconds)],
    }.get(column, [])
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _fmt(column: str, cell: dict[str, Any] | None) -> str:
    if cell is None:
        return "not run"
    value = cell.get("value")
    if isinstance(value, str) or value is None:
        return (value or "n/a").replace("|", "\\|")  # a bare | would split the table cell
    if column == "params":
        return f"{value / 1e6:.2f} M"
    if column == "gflops":
        return f"{value:.2f}"
    if column == "parity":
        return f"{value:.1e} m"
    if column == "latency":
        return f"{value:.1f}"
    if column == "fp16":
        return f"{value:+.2f} mm"
    return f"{value:.1f} mm"


HEADERS = {
    "params": "params (inference)",
    "gflops": "GFLOPs",
    "forms": "deployment forms (export flags)",
    "parity": "ORT vs torch max vertex diff",
    "fp16": "FP16 PA-MPJPE change",
    "int8": "INT8 PA-MPJPE change",
    "latency": "ORT CPU ms (batch 1)",
    "accuracy": "synth-val PA-MPJPE",
}


def render(table: dict[str, dict[str, Any]], rows: list[tuple[str, str]], header: str) -> str:
    """The markdown table (cached cells included) with its header lines."""
    lines = [header, "", "| model | variant | " + " | ".join(HEADERS.values()) + " |"]
    lines.append("| --- | --- | " + " | ".join("---:" for _ in HEADERS) + " |")
    for name, variant in rows:
        cells = table.get(f"{name}:{variant}", {})
        values = [_fmt(c, cells.get(c, {}).get("cell")) for c in HEADERS]
        lines.append(f"| {name} | {variant} | " + " | ".join(values) + " |")
    return "\n".join(lines)


def measure(
    args: argparse.Namespace, log: Callable[[str], None]
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Fill the cache for the chosen rows and columns; returns ``(cache, all rows)``."""
    from hmrt.runtime.stats import machine_line

    # the machine, not its momentary load, decides whether a cached latency still holds
    machine = re.sub(r", load average [^,]*", "", machine_line())
    cache: dict[str, Any] = {}
    if args.cache.is_file():
        cache = json.loads(args.cache.read_text(encoding="utf-8"))
    rows = registered_rows()
    chosen = rows if args.rows is None else [tuple(r.split(":", 1)) for r in args.rows]
    unknown = [f"{m}:{v}" for m, v in chosen if (m, v) not in rows]
    if unknown:
        from hmrt.runtime.errors import InputError

        known = " ".join(f"{m}:{v}" for m, v in rows)
        raise InputError(f"--rows {' '.join(unknown)}: not registered; known: {known}")
    columns = QUICK_COLUMNS if args.quick else ALL_COLUMNS
    for name, variant in chosen:
        row = Row(name, variant, args)
        if args.refresh:  # re-measure the chosen rows; other rows keep their cells
            cache.pop(f"{name}:{variant}", None)
        cells = cache.setdefault(f"{name}:{variant}", {})
        for column in columns:
            key = fingerprint(row, column, machine)
            if cells.get(column, {}).get("key") == key:
                continue
            start = time.perf_counter()
            cells[column] = {"key": key, "cell": row.cell(column)}
            cells[column]["seconds"] = round(time.perf_counter() - start, 1)
            log(f"{name}/{variant} {column}: {cells[column]['seconds']} s")
            args.cache.parent.mkdir(parents=True, exist_ok=True)
            args.cache.write_text(json.dumps(cache, indent=1), encoding="utf-8")
    return cache, rows


def run(args: argparse.Namespace) -> int:
    """Measure what is missing, print the table (and write it to ``--out``)."""
    from hmrt.runtime.stats import machine_line

    def log(msg: str) -> None:
        print(f"hmrt zoo: {msg}", file=sys.stderr, flush=True)

    cache, rows = measure(args, log)
    header = (
        f"# machine: {machine_line()}; ONNX Runtime CPU, {args.threads} thread(s); "
        f"{datetime.date.today().isoformat()}; parity/FP16 on {args.crops} crops, accuracy on "
        f"synth-val[0:{args.val}]"
    )
    text = render(cache, rows, header)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python bench/bench_zoo.py [options]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))
