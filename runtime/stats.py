"""Latency statistics and the machine description printed by ``hmrt run/demo/bench``.

Percentiles are over per-frame milliseconds after warm-up; the machine line names what the
numbers depend on (CPU model and cores, ONNX Runtime version and providers, GPU if any), so a
pasted table is reproducible.
"""

from __future__ import annotations

import os
import platform
import random
import re
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

STAGE_ORDER = (
    "decode",
    "detection",
    "preprocess",
    "inference",
    "postprocess",
    "smoothing",
    "render",
)
RESERVOIR = 8192
"""Values a :class:`Samples` keeps for percentiles (64 KiB of float64 per series)."""


class Samples:
    """Per-frame measurements in bounded memory: an exact count, sum, min and max, plus a
    uniform random sample (reservoir, Vitter's algorithm R) of at most ``capacity`` values for
    the percentiles.

    A run of any length (a camera left on for days) thus keeps a fixed ~64 KiB per series
    instead of a list that grows by one float per frame, while the mean stays exact and the
    percentiles are those of a uniform sample of the whole run (exact up to ``capacity``
    frames). Behaves like the list it replaces for the consumers: ``append``, ``len`` and
    iteration (over the kept values), truthiness, and ``np.asarray``.
    """

    def __init__(self, capacity: int = RESERVOIR, seed: int = 0):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.count = 0
        self.total = 0.0
        self.min = float("inf")
        self.max = float("-inf")
        self._kept = np.empty(0, np.float64)
        self._rng = random.Random(seed)  # fixed seed: reproducible percentiles

    def append(self, value: float) -> None:
        """Add one measurement."""
        v = float(value)
        self.count += 1
        self.total += v
        self.min = min(self.min, v)
        self.max = max(self.max, v)
        if self.count <= self.capacity:
            i, n = self.count - 1, len(self._kept)
            if i >= n:  # grow by doubling up to capacity: short runs stay small
                grown = np.empty(min(self.capacity, max(16, 2 * n)), np.float64)
                grown[:n] = self._kept
                self._kept = grown
            self._kept[i] = v
            return
        j = self._rng.randrange(self.count)
        if j < self.capacity:
            self._kept[j] = v

    @property
    def mean(self) -> float:
        """Exact mean over every value appended (NaN when empty)."""
        return self.total / self.count if self.count else float("nan")

    def values(self) -> np.ndarray:
        """The kept values (all of them up to ``capacity``, then a uniform sample)."""
        return self._kept[: min(self.count, self.capacity)]

    def __len__(self) -> int:
        return min(self.count, self.capacity)

    def __iter__(self) -> Iterator[float]:
        return iter(self.values().tolist())

    def __bool__(self) -> bool:
        return self.count > 0

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        v = self.values()
        return v.astype(dtype) if dtype is not None else v.copy()

    def __repr__(self) -> str:
        return f"Samples(count={self.count}, kept={len(self)}, mean={self.mean:.3f})"


def percentiles(values: list[float] | np.ndarray | Samples) -> dict[str, float]:
    """p50 / p90 / p99 / mean of ``values`` (NaN when empty); a :class:`Samples` gives its
    exact mean and the percentiles of its kept sample."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return {"p50": float("nan"), "p90": float("nan"), "p99": float("nan"), "mean": float("nan")}
    p50, p90, p99 = np.percentile(v, [50, 90, 99])
    mean = values.mean if isinstance(values, Samples) else float(v.mean())
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "mean": float(mean)}


def stage_table(
    stage_ms: dict[str, list[float]] | dict[str, Samples],
    extra_rows: dict[str, list[float]] | None = None,
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
