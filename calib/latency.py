"""ONNX Runtime CPU latency of several graphs, measured the same way for each.

Batch 1, a fixed number of intra-op threads (one by default: on a shared 2-core machine a
second OpenMP thread mostly spins against other jobs), warm-up runs excluded, and the graphs
measured round-robin (run 1 of each, run 2 of each, ...) so that load changes on a shared
machine hit every graph alike. Reports the median and the 10th percentile (closer to what an
idle machine gives).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import onnx


@dataclass
class Latency:
    """Milliseconds per batch-1 call."""

    median_ms: float
    p10_ms: float
    runs: int


def cpu_session(model: str | os.PathLike | onnx.ModelProto, threads: int = 1):
    """An ONNX Runtime CPU session with ``threads`` intra-op threads (quiet logging)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


def measure_latency(
    models: dict[str, str | os.PathLike | onnx.ModelProto],
    image: np.ndarray,
    threads: int = 1,
    runs: int = 50,
    warmup: int = 5,
) -> dict[str, Latency]:
    """Round-robin batch-1 latency of each graph on ``image`` ``(1, 3, H, W)``."""
    import time

    x = np.ascontiguousarray(image[:1], dtype=np.float32)
    sessions = {name: cpu_session(m, threads) for name, m in models.items()}
    feeds = {name: {s.get_inputs()[0].name: x} for name, s in sessions.items()}
    for name, s in sessions.items():
        for _ in range(warmup):
            s.run(None, feeds[name])
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(runs):
        for name, s in sessions.items():
            t0 = time.perf_counter()
            s.run(None, feeds[name])
            times[name].append((time.perf_counter() - t0) * 1e3)
    return {
        name: Latency(float(np.median(t)), float(np.percentile(t, 10)), len(t))
        for name, t in times.items()
    }


def load_average() -> str:
    """The 1-minute load average (the machine is shared: say how busy it was)."""
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "n/a"


def profile_groups(
    model: str | os.PathLike | onnx.ModelProto,
    image: np.ndarray,
    group_of,
    threads: int = 1,
    runs: int = 20,
) -> dict[str, float]:
    """Mean kernel milliseconds per group from ONNX Runtime's profiler.

    ``group_of(node_name) -> str`` names the group of a node of the *optimized* graph (fused
    nodes keep their original module path in the name).
    """
    import json
    import tempfile
    import time

    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="hmrt_prof_") as tmp:
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        so.enable_profiling = True
        so.profile_file_prefix = os.path.join(tmp, "profile")
        data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
        sess = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
        feed = {sess.get_inputs()[0].name: np.ascontiguousarray(image[:1], np.float32)}
        for _ in range(3):
            sess.run(None, feed)
        # Event timestamps are microseconds from the profiler's start (a monotonic clock).
        warm_us = (time.monotonic_ns() - sess.get_profiling_start_time_ns()) / 1000.0
        for _ in range(runs):
            sess.run(None, feed)
        with open(sess.end_profiling()) as f:
            events = json.load(f)
    totals: dict[str, float] = {}
    suffix = "_kernel_time"
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith(suffix):
            continue
        if e.get("ts", 0) < warm_us:
            continue
        group = group_of(e["name"][: -len(suffix)])
        totals[group] = totals.get(group, 0.0) + e["dur"] / 1000.0
    return {g: t / runs for g, t in sorted(totals.items(), key=lambda kv: -kv[1])}
