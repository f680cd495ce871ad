"""An ONNX Runtime session for any graph (detectors), with hmrt's provider choice.

hmrt's model backend checks the hmrt export contract (input ``image``, fixed outputs,
metadata); a third-party detector has none of that. This session only loads the graph,
picks providers exactly like :mod:`hmrt.runtime.backends.onnxruntime_backend` (``auto``:
TensorRT EP > CUDA > CPU; an explicit backend never falls back silently; ``notes`` say why
a faster provider was skipped) and describes the graph's inputs and outputs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hmrt.runtime.backends.onnxruntime_backend import PROVIDER_CHOICES, open_session
from hmrt.runtime.errors import BackendUnavailableError, InputError

BACKENDS = ("auto", *PROVIDER_CHOICES)
_ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
_NUMPY_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
}


@dataclass(frozen=True)
class TensorInfo:
    """One graph input or output: ``shape`` has None for a dynamic dimension."""

    name: str
    shape: tuple[int | None, ...]
    type: str  # ONNX Runtime's spelling, e.g. "tensor(float)"

    @property
    def dtype(self) -> type | None:
        """The numpy dtype of this tensor (None for types hmrt does not feed)."""
        return _NUMPY_TYPES.get(self.type)

    def __str__(self) -> str:
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name} [{dims}]"


def _info(arg) -> TensorInfo:
    shape = arg.shape if isinstance(arg.shape, (list, tuple)) else []
    # ORT gives a symbolic name (str) or None for a dynamic dim, 0 or -1 in some exporters.
    dims = tuple(d if isinstance(d, int) and d > 0 else None for d in shape)
    return TensorInfo(arg.name, dims, arg.type)


class GraphSession:
    """Runs an arbitrary ``.onnx`` graph in ONNX Runtime.

    Args:
        path: the ``.onnx`` file.
        backend: ``auto`` (= ``onnxruntime``: fastest provider that starts), ``onnxruntime``,
            ``onnxruntime-trt``, ``onnxruntime-cuda`` or ``onnxruntime-cpu``.
        threads: intra-op threads (None: ONNX Runtime's default).
        spin: let idle worker threads spin (off: the pipeline shares small CPUs).
        fix: what to tell the user when the file is not a loadable ONNX model.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        backend: str = "auto",
        threads: int | None = None,
        spin: bool = False,
        fix: str = "export the model to ONNX again",
    ):
        self.path = Path(path)
        if self.path.suffix.lower() in _ENGINE_SUFFIXES:
            raise InputError(
                f"{self.path.name} is a TensorRT engine; a detector runs on ONNX Runtime: give "
                "its .onnx file (use --backend onnxruntime-trt to run it with TensorRT)"
            )
        if backend == "tensorrt":
            raise BackendUnavailableError(
                "a detector runs on ONNX Runtime, not on the tensorrt backend; use "
                "onnxruntime-trt (TensorRT execution provider) or auto"
            )
        if backend not in BACKENDS:
            raise BackendUnavailableError(
                f"unknown detector backend {backend!r}; choose one of {', '.join(BACKENDS)}"
            )
        self.notes: list[str] = []
        ort_backend = "onnxruntime" if backend == "auto" else backend
        self._session, self.provider = open_session(
            self.path, ort_backend, threads=threads, spin=spin, notes=self.notes, fix=fix
        )
        self.name = f"onnxruntime[{self.provider}]"
        self.threads = threads
        self.inputs = [_info(a) for a in self._session.get_inputs()]
        self.outputs = [_info(a) for a in self._session.get_outputs()]
        meta = self._session.get_modelmeta()
        self.metadata: dict[str, str] = dict(meta.custom_metadata_map or {})
        self.producer: str = meta.producer_name or ""

    def run(
        self, feeds: dict[str, np.ndarray], outputs: list[str] | None = None
    ) -> list[np.ndarray]:
        """Run once; returns the requested outputs (default: all, in graph order)."""
        return self._session.run(outputs, feeds)

    def close(self) -> None:
        """Drop the session (ONNX Runtime frees it when the last reference goes)."""
        self._session = None  # type: ignore[assignment]
