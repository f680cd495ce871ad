"""Activation ranges for INT8: |x| histograms over the calibration crops, then a threshold rule.

Why not ORT's own calibrators: its entropy search loops in Python (minutes per tensor at 2048
bins) and spreads each quantized level over all bins rather than the non-empty ones; its
calibrators also hold every intermediate tensor of the whole set in memory. Here, the graph is
augmented with the tensors to calibrate as extra outputs, ONNX Runtime runs it batch by batch,
and each tensor keeps a fixed-size histogram of ``|x|`` (2048 bins, re-binned by an integer
factor when a later batch exceeds the range), as TensorRT's calibrators do. Thresholds:

* ``entropy``: TensorRT's KL-divergence rule (IInt8EntropyCalibrator2's idea: the clipping
  threshold whose 128-level quantization of the clipped histogram loses least information),
  vectorised over all candidate thresholds;
* ``minmax``: max ``|x|``;
* ``percentile``: the ``p``-th percentile of ``|x|`` (default 99.99).

A :class:`RangeSet` keeps, per tensor, the threshold ``t`` and the observed signed min/max, with
the method and the source graph's sha256; it is hmrt's calibration cache (JSON, atomic). It is
turned into ONNX Runtime's calibration-cache format per target (:func:`write_ort_cache`):
symmetric ``(-t, t)`` for TensorRT (int8 zero points 0); for the ONNX Runtime CPU recipe
``(0, t)`` where a tensor is never negative (after ReLU/ReLU6: the full uint8 range, and ORT
folds the activation into the convolution), else ``(-t, t)``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto

NUM_BINS = 2048
TARGET_LEVELS = 128  # positive int8 levels (TensorRT's entropy calibration target)
FLOAT_TYPES = (TensorProto.FLOAT, TensorProto.FLOAT16)
CACHE_FORMAT = "hmrt-int8-ranges-v1"


@dataclass
class AbsHistogram:
    """Histogram of ``|x|`` with ``bins`` equal bins over ``[0, width * bins]``."""

    bins: int = NUM_BINS
    width: float = 0.0
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    amax: float = 0.0
    lo: float = float("inf")
    hi: float = float("-inf")

    def add(self, values: np.ndarray) -> None:
        """Accumulate ``|values|`` (re-binning by an integer factor when the range grows)."""
        v = np.asarray(values, dtype=np.float32).reshape(-1)
        v = v[np.isfinite(v)]
        if v.size == 0:
            return
        self.lo, self.hi = min(self.lo, float(v.min())), max(self.hi, float(v.max()))
        a = np.abs(v)
        top = float(a.max())
        self.amax = max(self.amax, top)
        if self.width == 0.0:
            if self.counts.size == 0:
                self.counts = np.zeros(self.bins, np.int64)
            if top == 0.0:  # all zeros so far: they belong in bin 0 whatever the width
                self.counts[0] += a.size
                return
            self.width = top / self.bins
        if top > self.width * self.bins:
            factor = int(np.ceil(top / (self.width * self.bins)))
            pad = (-len(self.counts)) % factor
            merged = np.concatenate([self.counts, np.zeros(pad, np.int64)]).reshape(-1, factor)
            self.counts = np.zeros(self.bins, np.int64)
            summed = merged.sum(axis=1)
            self.counts[: len(summed)] = summed[: self.bins]
            self.width *= factor
        idx = np.minimum((a / self.width).astype(np.int64), self.bins - 1)
        self.counts += np.bincount(idx, minlength=self.bins)[: self.bins]

    def edges(self) -> np.ndarray:
        """Upper edge of every bin."""
        return self.width * np.arange(1, self.bins + 1, dtype=np.float64)


def entropy_threshold(hist: AbsHistogram, levels: int = TARGET_LEVELS) -> float:
    """TensorRT-style KL threshold of ``hist`` (max |x| when there is nothing to clip).

    For every candidate ``i`` (bins kept), P is the first ``i`` bins with the mass beyond them
    added to the last, Q the same ``i`` bins merged into ``levels`` groups and spread evenly over
    each group's non-empty bins; the threshold minimises KL(P || Q). Group sums come from cumulative
    sums (group ``g`` of candidate ``i`` holds bins ``ceil(g i / L) .. ceil((g+1) i / L) - 1``),
    so all candidates cost O(candidates x levels) instead of a Python loop over bins.
    """
    counts = hist.counts.astype(np.float64)
    total = counts.sum()
    if hist.width == 0.0 or total == 0:
        return hist.amax
    last = int(np.nonzero(counts)[0].max()) + 1
    if last <= levels:
        return hist.amax  # fewer occupied bins than levels: clipping cannot help
    c = counts[:last]
    cand = np.arange(levels, last + 1)
    csum = np.concatenate([[0.0], np.cumsum(c)])
    nzsum = np.concatenate([[0.0], np.cumsum(c > 0)])
    xlogx = np.where(c > 0, c * np.log(np.maximum(c, 1.0)), 0.0)
    clog = np.concatenate([[0.0], np.cumsum(xlogx)])
    g = np.arange(levels + 1)
    bounds = -((-g[None, :] * cand[:, None]) // levels)  # ceil(g * i / L), (C, L + 1)
    sums = csum[bounds[:, 1:]] - csum[bounds[:, :-1]]
    nonzero = nzsum[bounds[:, 1:]] - nzsum[bounds[:, :-1]]
    outliers = total - csum[cand]
    last_bin = c[cand - 1]
    nonzero[:, -1] += (last_bin == 0) & (outliers > 0)
    p_groups = sums.copy()
    p_groups[:, -1] += outliers
    p_last = last_bin + outliers
    plogp = clog[cand - 1] + np.where(p_last > 0, p_last * np.log(np.maximum(p_last, 1.0)), 0.0)
    q_total = csum[cand][:, None]
    q = np.divide(sums, nonzero * q_total, out=np.zeros_like(sums), where=nonzero > 0)
    cross = np.where(p_groups > 0, p_groups * np.log(np.maximum(q, 1e-30)), 0.0).sum(axis=1)
    kl = plogp / total - np.log(total) - cross / total
    best = int(cand[int(np.argmin(kl))])
    return float(min(best * hist.width, hist.amax))


def percentile_threshold(hist: AbsHistogram, percentile: float) -> float:
    """The ``percentile`` of ``|x|`` from the histogram (bin upper edge)."""
    total = hist.counts.sum()
    if hist.width == 0.0 or total == 0:
        return hist.amax
    cdf = np.cumsum(hist.counts) / total
    idx = int(np.searchsorted(cdf, percentile / 100.0))
    return float(min(hist.edges()[min(idx, hist.bins - 1)], hist.amax))


def tensors_to_calibrate(model: onnx.ModelProto, op_types: tuple[str, ...]) -> list[str]:
    """Float activations read or written by nodes of ``op_types`` outside the FP32 islands."""
    from hmrt.runtime.graph_islands import island_of

    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*g.value_info, *g.input, *g.output]}
    consts = {t.name for t in g.initializer} | {
        o for n in g.node if n.op_type == "Constant" for o in n.output
    }
    names: dict[str, None] = {}
    for node in g.node:
        if node.op_type not in op_types or island_of(node.name) is not None:
            continue
        for t in [*node.input, *node.output]:
            if t and t not in consts and types.get(t) in FLOAT_TYPES:
                names[t] = None
    return list(names)


def augmented(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """A copy of ``model`` that also outputs ``names``."""
    out = onnx.ModelProto.FromString(model.SerializeToString())
    present = {o.name for o in out.graph.output}
    for name in names:
        if name not in present:
            out.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    return out


def collect_histograms(
    model_path: str | os.PathLike,
    images: np.ndarray,
    names: list[str],
    batch: int = 8,
    bins: int = NUM_BINS,
    progress: bool = True,
    desc: str = "calibrating",
) -> dict[str, AbsHistogram]:
    """Run the augmented graph over ``images``; one |x| histogram per tensor in ``names``."""
    import onnxruntime as ort
    from tqdm import tqdm

    model = augmented(onnx.load(str(model_path)), names)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    input_name = sess.get_inputs()[0].name
    hists = {n: AbsHistogram(bins) for n in names}
    bar = tqdm(total=len(images), desc=desc, unit="img", disable=not progress, leave=False)
    for start in range(0, len(images), batch):
        x = np.ascontiguousarray(images[start : start + batch], dtype=np.float32)
        for name, value in zip(names, sess.run(names, {input_name: x})):
            hists[name].add(value)
        bar.update(len(x))
    bar.close()
    return hists


def thresholds(
    hists: dict[str, AbsHistogram], method: str, percentile: float = 99.99
) -> dict[str, float]:
    """``{tensor: t}`` for ``method`` in ``entropy | minmax | percentile``."""
    rule = {
        "entropy": entropy_threshold,
        "minmax": lambda h: h.amax,
        "percentile": lambda h: percentile_threshold(h, percentile),
    }[method]
    return {name: float(rule(h)) for name, h in hists.items()}


@dataclass
class RangeSet:
    """Calibrated ranges: ``tensors[name] = (t, lo, hi)`` (threshold, observed min and max)."""

    method: str
    percentile: float
    model_sha256: str
    tensors: dict[str, tuple[float, float, float]]
    data: str = ""  # what the ranges were measured on (recorded in the INT8 graph's metadata)
    n: int = 0

    def save(self, path: str | os.PathLike) -> Path:
        """Write as JSON (atomically)."""
        import json

        from hmrt.runtime.atomic import write_text_atomic

        data = {
            "format": CACHE_FORMAT,
            "method": self.method,
            "percentile": self.percentile,
            "model_sha256": self.model_sha256,
            "data": self.data,
            "n": self.n,
            "tensors": {k: list(v) for k, v in self.tensors.items()},
        }
        return write_text_atomic(path, json.dumps(data, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> RangeSet:
        """Read a cache written by :meth:`save`; InputError if it is not one."""
        import json

        from hmrt.runtime.errors import InputError

        try:
            data = json.loads(Path(path).read_text())
            if data.get("format") != CACHE_FORMAT:
                raise ValueError("not an hmrt range cache")
            tensors = {
                k: (float(v[0]), float(v[1]), float(v[2])) for k, v in data["tensors"].items()
            }
            return cls(
                data["method"],
                float(data["percentile"]),
                data["model_sha256"],
                tensors,
                str(data.get("data", "")),
                int(data.get("n", 0)),
            )
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            raise InputError(
                f"{path}: not a readable hmrt calibration cache ({exc}); delete it to recalibrate"
            ) from exc


def range_set(
    hists: dict[str, AbsHistogram], method: str, percentile: float, model_sha256: str
) -> RangeSet:
    """Thresholds by ``method`` plus the observed min/max of every tensor."""
    ts = thresholds(hists, method, percentile)
    tensors = {}
    for name, h in hists.items():
        lo = h.lo if np.isfinite(h.lo) else 0.0
        hi = h.hi if np.isfinite(h.hi) else 0.0
        tensors[name] = (ts[name], lo, hi)
    return RangeSet(method, percentile, model_sha256, tensors)


def write_ort_cache(ranges: RangeSet, target: str, path: str | os.PathLike) -> Path:
    """ONNX Runtime's calibration cache for ``target`` (``tensorrt`` | ``onnxruntime-cpu``)."""
    from onnxruntime.quantization.calibrate import (
        CalibrationMethod,
        TensorData,
        TensorsData,
        save_tensors_data,
    )

    ort_method = {
        "entropy": CalibrationMethod.Entropy,
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
    }[ranges.method]
    data = {}
    for name, (t, lo, _hi) in ranges.tensors.items():
        t = max(t, 1e-8)  # an all-zero tensor still needs a positive scale
        low = 0.0 if target == "onnxruntime-cpu" and lo >= 0.0 else -t
        data[name] = TensorData(lowest=np.array(low, np.float32), highest=np.array(t, np.float32))
    save_tensors_data(TensorsData(ort_method, data), path)
    return Path(path)
