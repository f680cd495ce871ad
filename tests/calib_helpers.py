"""Shared, built-once inputs of the INT8 tests: a DaNet-edge ONNX, synthetic crops, a Q/DQ graph.

Everything is real: the DaNet-edge model (random weights, the tiny tube body of
``tests/body_helpers.py``) exported by ``hmrt.export``; calibration crops rendered by the
synthetic engine (``tests/data_helpers.py``'s part-labelled tiny body) and cropped by the
runtime's preprocessing; the Q/DQ graph written by ``hmrt.calib``. Built once per session into a
temporary folder (a few seconds each on the shared 2-core machine).
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np

CALIB_N = 12


@functools.lru_cache(maxsize=1)
def workdir() -> Path:
    """A session temporary folder, removed at exit."""
    folder = Path(tempfile.mkdtemp(prefix="hmrt_calib_tests_"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


@functools.lru_cache(maxsize=1)
def parts_body() -> Path:
    """The tiny body with DensePose parts (the synthetic engine renders it)."""
    from data_helpers import write_parts_body

    return write_parts_body(workdir() / "parts_body.npz")


@functools.lru_cache(maxsize=1)
def danet_edge_fp32() -> Path:
    """DaNet-edge (random weights, seed 0) exported to ONNX opset 17 with FP32-island tags."""
    import torch
    from model_helpers import build_danet

    from hmrt.export.onnx_export import ExportOptions, export_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = build_danet("edge").eval()
        path = workdir() / "danet_edge_fp32.onnx"
        export_model(model, path, "danet", "edge", ExportOptions())
    finally:
        torch.set_num_threads(threads)
    return path


@functools.lru_cache(maxsize=2)
def synth_crops(n: int = CALIB_N, seed: int | None = None) -> np.ndarray:
    """``n`` synthetic calibration crops through the runtime preprocessing of the ONNX above."""
    from hmrt.calib.data import (
        CALIB_SEED,
        SynthSource,
        calibration_images,
        preprocessor_from_onnx,
    )

    source = SynthSource(n, CALIB_SEED if seed is None else seed, body=parts_body())
    return calibration_images(source, preprocessor_from_onnx(danet_edge_fp32()), progress=False)


@functools.lru_cache(maxsize=1)
def int8_graph() -> tuple[Path, Path]:
    """(Q/DQ graph, its range cache): minmax ranges over :func:`synth_crops`."""
    from hmrt.calib.qdq import QuantizeOptions, quantize_to_qdq

    out, cache = workdir() / "danet_edge_int8.onnx", workdir() / "ranges_minmax.json"
    quantize_to_qdq(
        danet_edge_fp32(), out, synth_crops(), QuantizeOptions(method="minmax"), "synth", cache,
        progress=False,
    )  # fmt: skip
    return out, cache


def ort_outputs(path, images: np.ndarray, batch: int = 4) -> dict[str, np.ndarray]:
    """ONNX Runtime CPU outputs of a model file or ModelProto over ``images``."""
    from hmrt.calib.latency import cpu_session

    sess = cpu_session(path, threads=1)
    names = [o.name for o in sess.get_outputs()]
    parts = [sess.run(None, {"image": images[i : i + batch]}) for i in range(0, len(images), batch)]
    return {n: np.concatenate([p[k] for p in parts]) for k, n in enumerate(names)}
