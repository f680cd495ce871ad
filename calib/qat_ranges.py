"""QAT activation ranges onto ONNX tensor names, so the Q/DQ writer makes the PTQ graph's structure.

The fake-quant observers of a PT2E graph are named after FX nodes (``activation_post_process_7``)
while the Q/DQ writer (:func:`hmrt.calib.qdq.quantize_to_qdq`) wants ranges per ONNX tensor. The
two graphs come from different tracers, so names cannot be matched; values can. During QAT each
observed tensor is recorded on a fixed probe batch (:func:`save_observed`: a deterministic sample
of its values); here the FP32 ONNX exported from the QAT checkpoint runs on the same probe and
every tensor the writer may quantize is matched to the observed tensor with the same shape and
values (:func:`match_ranges`). Matched tensors get the QAT range (symmetric, ``amax`` of the
observer's moving min/max); the rest (tensors QAT did not observe: Clip/Relu outputs that no
quantized node reads, islands) keep the calibrated ``minmax`` range, which the plan never uses
for a quantized input. The result is an ordinary :class:`hmrt.calib.ranges.RangeSet` cache
(method ``minmax``), passed to the writer unchanged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SAMPLES = 256  # values kept per observed tensor (a fingerprint, not the tensor)
RANGES_FORMAT = "hmrt-qat-ranges-v1"


def _sample_index(size: int, n: int = SAMPLES) -> np.ndarray:
    """Fixed flat positions (the same on both sides: a function of the size only)."""
    rng = np.random.default_rng(size)
    return np.sort(rng.choice(size, size=min(n, size), replace=False))


def fingerprint(values: np.ndarray) -> np.ndarray:
    """The sampled values of ``values`` (float32, ravelled at :func:`_sample_index`)."""
    flat = np.asarray(values, np.float32).reshape(-1)
    return flat[_sample_index(flat.size)]


def save_observed(
    path: str | os.PathLike,
    ranges: dict[str, tuple[float, float, float]],
    seen: dict[str, np.ndarray],
    probe: np.ndarray,
    step: int,
) -> Path:
    """Write the QAT ranges with each tensor's shape and fingerprint on ``probe`` (npz, atomic)."""
    from hmrt.runtime.atomic import atomic_path

    names = sorted(n for n in ranges if n in seen)
    shapes = np.zeros((len(names), 8), np.int64) - 1
    for i, n in enumerate(names):
        shape = seen[n].shape
        shapes[i, : len(shape)] = shape
    data = {
        "format": np.array(RANGES_FORMAT),
        "names": np.array(names),
        "ranges": np.array([ranges[n] for n in names], np.float64).reshape(-1, 3),
        "shapes": shapes,
        "prints": np.stack([np.pad(fingerprint(seen[n]), (0, SAMPLES))[:SAMPLES] for n in names])
        if names
        else np.zeros((0, SAMPLES), np.float32),
        "probe": np.asarray(probe, np.float32),
        "step": np.array(step),
    }
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **data)
    return path


@dataclass
class Observed:
    """What :func:`save_observed` wrote."""

    names: list[str]
    ranges: np.ndarray  # (n, 3): amax, min, max
    shapes: list[tuple[int, ...]]
    prints: np.ndarray  # (n, SAMPLES)
    probe: np.ndarray
    step: int

    @classmethod
    def load(cls, path: str | os.PathLike) -> Observed:
        """Read a ``qat_ranges.npz``; InputError naming the file if it is not one."""
        from hmrt.runtime.errors import InputError

        try:
            z = np.load(path, allow_pickle=False)
            if str(z["format"]) != RANGES_FORMAT:
                raise ValueError("not an hmrt QAT range file")
            shapes = [tuple(int(d) for d in row if d >= 0) for row in z["shapes"]]
            return cls(
                [str(n) for n in z["names"]],
                z["ranges"],
                shapes,
                z["prints"],
                z["probe"],
                int(z["step"]),
            )
        except (OSError, ValueError, KeyError) as exc:
            raise InputError(
                f"{path}: not a QAT range file ({exc}); pass the qat_ranges.npz that "
                "`hmrt calibrate --qat` wrote next to qat.pt"
            ) from exc


@dataclass
class RangeMatch:
    """The QAT :class:`~hmrt.calib.ranges.RangeSet` of an ONNX graph and how it was matched."""

    ranges: object  # RangeSet
    matched: dict[str, str]  # ONNX tensor -> fake-quant name
    unmatched: list[str]  # ONNX tensors that kept the fallback range
    fallback_quantized: list[str] = field(default_factory=list)  # ... and are quantized


def probe_onnx(model, names: list[str], probe: np.ndarray) -> dict[str, np.ndarray]:
    """Values of the ONNX tensors ``names`` on ``probe`` (ONNX Runtime CPU, basic optimisation)."""
    import onnxruntime as ort

    from hmrt.calib.ranges import augmented

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.log_severity_level = 3
    sess = ort.InferenceSession(
        augmented(model, names).SerializeToString(), so, providers=["CPUExecutionProvider"]
    )
    x = np.ascontiguousarray(probe, np.float32)
    return dict(zip(names, sess.run(names, {sess.get_inputs()[0].name: x})))


def match_ranges(
    fp32_path: str | os.PathLike,
    observed: Observed,
    fallback=None,
    tolerance: float = 2e-3,
) -> RangeMatch:
    """Give every tensor the Q/DQ writer may quantize its QAT range, matched by value.

    An ONNX tensor matches an observed one with the same shape whose fingerprint differs by
    at most ``tolerance`` x its largest magnitude (export folds BatchNorm, so values differ in
    the last bits). Several matches (one tensor read by several quantized ops): the largest
    range. ``fallback`` (a ``minmax`` RangeSet of the same graph) covers the rest.
    """
    import onnx

    from hmrt.calib.qdq import CALIBRATED_OP_TYPES
    from hmrt.calib.ranges import RangeSet, tensors_to_calibrate
    from hmrt.runtime.cache import file_sha256

    model = onnx.load(str(fp32_path))
    names = tensors_to_calibrate(model, CALIBRATED_OP_TYPES)
    values = probe_onnx(model, names, observed.probe)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, shape in enumerate(observed.shapes):
        by_shape.setdefault(shape, []).append(i)
    tensors: dict[str, tuple[float, float, float]] = {}
    matched: dict[str, str] = {}
    unmatched: list[str] = []
    for name in names:
        value = values[name]
        fp = fingerprint(value)
        scale = max(float(np.abs(fp).max()), 1e-6)
        hits = [
            i
            for i in by_shape.get(tuple(value.shape), [])
            if float(np.abs(observed.prints[i][: len(fp)] - fp).max()) <= tolerance * scale
        ]
        if hits:
            best = max(hits, key=lambda i: observed.ranges[i][0])
            amax, lo, hi = (float(v) for v in observed.ranges[best])
            tensors[name] = (amax, lo, hi)
            matched[name] = observed.names[best]
        else:
            unmatched.append(name)
            if fallback is not None and name in fallback.tensors:
                tensors[name] = fallback.tensors[name]
            else:  # no fallback: the probe's own extremes (never read by a quantized op)
                lo, hi = float(value.min()), float(value.max())
                tensors[name] = (max(abs(lo), abs(hi)), lo, hi)
    ranges = RangeSet("minmax", 99.99, file_sha256(fp32_path), tensors)
    ranges.data = f"QAT observers (step {observed.step})"
    ranges.n = len(observed.probe)
    return RangeMatch(ranges, matched, unmatched)


def write_qat_qdq(
    fp32_path: str | os.PathLike,
    ranges_path: str | os.PathLike,
    out_path: str | os.PathLike,
    images: np.ndarray | None = None,
    per_channel: bool = True,
    data_description: str = "",
    progress: bool = True,
    cache_out: str | os.PathLike | None = None,
):
    """The INT8 Q/DQ graph of a QAT checkpoint's FP32 export, with the QAT ranges.

    ``fp32_path``: ``hmrt export`` of ``qat.pt``; ``ranges_path``: the ``qat_ranges.npz`` next to
    it; ``images``: calibration crops for the fallback ``minmax`` ranges (optional). Everything
    else is the PTQ writer (:func:`hmrt.calib.qdq.quantize_to_qdq`) unchanged, so the graph has
    the PTQ graph's structure. ``cache_out`` also keeps the matched ranges there (a ``minmax``
    calibration cache of ``fp32_path``: the precision report's sensitivity after QAT reuses it).
    Returns ``(QuantizeResult, RangeMatch)``.
    """
    import tempfile

    import onnx

    from hmrt.calib.qdq import QuantizeOptions, calibrate_ranges, quantize_to_qdq
    from hmrt.runtime.atomic import atomic_path
    from hmrt.runtime.cache import file_sha256

    observed = Observed.load(ranges_path)
    options = QuantizeOptions(method="minmax", per_channel=per_channel)
    fallback = None
    if images is not None and len(images):
        fallback = calibrate_ranges(
            Path(fp32_path), images, options, file_sha256(fp32_path), progress
        )
    match = match_ranges(fp32_path, observed, fallback)
    with tempfile.TemporaryDirectory(prefix="hmrt_qat_") as tmp:
        cache = Path(tmp) / "qat_ranges.json"
        match.ranges.save(cache)
        if cache_out is not None:
            match.ranges.save(cache_out)
        description = f"QAT ranges ({Path(ranges_path).name}, step {observed.step})"
        if data_description:
            description += f"; fallback minmax on {data_description}"
        result = quantize_to_qdq(fp32_path, out_path, None, options, description, cache, progress)
    model = onnx.load(str(result.path))
    inits = {t.name for t in model.graph.initializer}
    read_int8 = {
        n.input[0]
        for n in model.graph.node
        if n.op_type == "QuantizeLinear" and n.input[0] not in inits
    }
    match.fallback_quantized = sorted(read_int8 & set(match.unmatched))
    extra = {
        "hmrt.int8_recipe": "qat",
        "hmrt.int8_qat_step": str(observed.step),
        "hmrt.int8_qat_fallback": str(len(match.fallback_quantized)),
    }
    for entry in model.metadata_props:
        if entry.key in extra:
            entry.value = extra.pop(entry.key)
    for key, value in extra.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    with atomic_path(result.path) as tmp_out:
        onnx.save(model, str(tmp_out))
    result.metadata.update({p.key: p.value for p in model.metadata_props})
    return result, match


def write_qat_graph(
    fp32_path: str | os.PathLike,
    ranges_path: str | os.PathLike,
    out_path: str | os.PathLike,
    data: str = "synth",
    n: int = 64,
    seed: int | None = None,
    body: str | os.PathLike | None = None,
    per_channel: bool = True,
    progress: bool = True,
    cache_out: str | os.PathLike | None = None,
):
    """:func:`write_qat_qdq` with its fallback ``minmax`` ranges calibrated on ``n`` crops of
    ``data`` (``hmrt calibrate --qat-ranges`` and the precision report's QAT row share it, so
    both write the same graph). Returns ``(QuantizeResult, RangeMatch, data description)``."""
    from hmrt.calib.data import (
        CALIB_SEED,
        calibration_images,
        open_calibration_source,
        preprocessor_from_onnx,
    )

    source = open_calibration_source(data, n, CALIB_SEED if seed is None else seed, body)
    images = calibration_images(source, preprocessor_from_onnx(fp32_path), progress)
    result, match = write_qat_qdq(
        fp32_path,
        ranges_path,
        out_path,
        images,
        per_channel,
        source.description,
        progress,
        cache_out,
    )
    return result, match, source.description
