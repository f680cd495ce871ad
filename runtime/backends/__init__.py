"""Backend selection: which engine runs a model file, decided loudly.

``backend="auto"``: a ``.engine`` runs on TensorRT (nothing else can run a plan); a ``.onnx``
runs on ONNX Runtime with the fastest provider that starts: the TensorRT execution provider,
then CUDA, then CPU. The chosen backend's ``name`` and ``notes`` say what runs and why faster
ones were skipped. A backend named explicitly (``tensorrt``, ``onnxruntime-cuda``, ...) that
cannot run raises BackendUnavailableError: hmrt never falls back silently.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from hmrt.runtime.backends.base import Backend, check_model_file
from hmrt.runtime.errors import BackendUnavailableError, ModelLoadError

ONNXRUNTIME_BACKENDS = ("onnxruntime", "onnxruntime-trt", "onnxruntime-cuda", "onnxruntime-cpu")
BACKENDS = ("auto", "tensorrt", *ONNXRUNTIME_BACKENDS)

__all__ = ["BACKENDS", "Backend", "check_model_file", "open_backend"]
log = logging.getLogger("hmrt.runtime")


def open_backend(
    path: str | os.PathLike,
    backend: str = "auto",
    threads: int | None = None,
    cuda: str = "auto",
    cuda_graph: bool = False,
    device: int = 0,
) -> Backend:
    """Load ``path`` (``.onnx`` or ``.engine``) on ``backend`` (one of :data:`BACKENDS`).

    Logs (``hmrt.runtime`` logger, INFO) which backend runs and why faster ones were skipped.
    """
    loaded = _open(path, backend, threads, cuda, cuda_graph, device)
    log.info("hmrt: %s runs on %s", Path(path).name, loaded.name)
    for note in loaded.notes:
        log.info("hmrt:   %s", note)
    return loaded


def _open(path, backend, threads, cuda, cuda_graph, device) -> Backend:
    path = Path(path)
    if backend not in BACKENDS:
        raise BackendUnavailableError(
            f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}"
        )
    check_model_file(path)
    suffix = path.suffix.lower()
    if suffix in (".engine", ".plan", ".trt"):
        if backend not in ("auto", "tensorrt"):
            raise BackendUnavailableError(
                f"{path.name} is a TensorRT engine, which only the tensorrt backend runs; "
                f"pass the .onnx file to use {backend}"
            )
        from hmrt.runtime.backends.tensorrt_backend import TensorRTBackend

        return TensorRTBackend(path, cuda=cuda, cuda_graph=cuda_graph, device=device)
    if suffix != ".onnx":
        raise ModelLoadError(
            f"{path}: expected an .onnx or .engine file; export one with `hmrt export`"
        )
    if backend == "tensorrt":
        raise BackendUnavailableError(
            f"the tensorrt backend runs .engine files; build one from {path.name} with "
            f"`python export/build_engine.py --onnx {path}`, or use --backend onnxruntime"
        )
    from hmrt.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

    name = "onnxruntime" if backend == "auto" else backend
    return OnnxRuntimeBackend(path, name, threads=threads)
