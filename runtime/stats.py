"""Latency statistics and the machine description printed by ``hmrt run/demo/bench``.

Percentiles are over per-frame milliseconds after warm-up; the machine line names what the
numbers depend on (CPU model and cores, ONNX Runtime version and providers, GPU if any), so a
pasted table is reproducible.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
from collections.abc import Iterable
from pathlib import Path

import numpy as np

STAGE_ORDER = ("decode", "preprocess", "inference", "postprocess", "smoothing", "render")


def percentiles(values: list[float] | np.ndarray) -> dict[str, float]:
    """p50 / p90 / p99 / mean of ``values`` (NaN when empty)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return {"p50": float("nan"), "p90": float("nan"), "p99": float("nan"), "mean": float("nan")}
    p50, p90, p99 = np.percentile(v, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "mean": float(v.mean())}


def stage_table(
    stage_ms: dict[str, list[float]], extra_rows: dict[str, list[float]] | None = None
) -> str:
    """A plain-text table: one row per stage with p50/p90/p99/mean in milliseconds."""
    rows = [(s, stage_ms[s]) for s in STAGE_ORDER if stage_ms.get(s)]
    rows += [(k, v) for k, v in (extra_rows or {}).items() if v]
    lines = [f"{'stage':<22}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'mean ms':>9}"]
    for name, values in rows:
        p = percentiles(values)
        lines.append(f"{name:<22}{p['p50']:>9.2f}{p['p90']:>9.2f}{p['p99']:>9.2f}{p['mean']:>9.2f}")
    return "\n".join(lines)


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux, else platform)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
        m = re.search(r"model name\s*:\s*(.+)", text)
        if m:
            return m.group(1).strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_description() -> str | None:
    """``name, driver`` of the first NVIDIA GPU via nvidia-smi, or None."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return out.splitlines()[0] if out else None


def machine_description() -> dict[str, str]:
    """CPU, cores, OS, Python, numpy/OpenCV/ONNX Runtime versions and providers, GPU."""
    info = {
        "cpu": cpu_model(),
        "cores": str(
            len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        ),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    try:
        import cv2

        info["opencv"] = cv2.__version__
    except ImportError:
        pass
    try:
        import onnxruntime as ort

        info["onnxruntime"] = ort.__version__
        info["ort_providers"] = ",".join(ort.get_available_providers())
    except ImportError:
        info["onnxruntime"] = "not installed"
    for name in ("tensorrt", "tensorrt_lean", "tensorrt_dispatch"):
        try:
            mod = __import__(name)
            info["tensorrt"] = f"{name} {mod.__version__}"
            break
        except ImportError:
            continue
    info["gpu"] = gpu_description() or "none"
    if hasattr(os, "getloadavg"):
        # Other processes competing for the cores slow every stage: record how busy it was.
        info["loadavg_1m"] = f"{os.getloadavg()[0]:.2f}"
    return info


def machine_text(info: dict[str, str] | None = None) -> str:
    """One line per machine fact, for the top of a benchmark table."""
    info = info or machine_description()
    return "\n".join(f"{k:<14}{v}" for k, v in info.items())


_LINE_FORMAT = {
    "cores": "{} logical CPUs",
    "python": "Python {}",
    "numpy": "numpy {}",
    "opencv": "OpenCV {}",
    "onnxruntime": "ONNX Runtime {}",
    "ort_providers": "providers {}",
    "gpu": "GPU {}",
    "loadavg_1m": "load average {} (1 min)",
}


def machine_line(info: dict[str, str] | None = None, keys: Iterable[str] | None = None) -> str:
    """The machine on one line (``CPU model, 2 logical CPUs, Linux ..., Python ...``): the
    machine line of every benchmark table and report; ``keys`` picks facts (default: all)."""
    info = info or machine_description()
    wanted = list(info) if keys is None else [k for k in keys if k in info]
    return ", ".join(_LINE_FORMAT.get(k, "{}").format(info[k]) for k in wanted)
