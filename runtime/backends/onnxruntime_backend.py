"""ONNX Runtime backend: CPU, and the CUDA / TensorRT execution providers when installed.

ONNX Runtime drops a provider it cannot load (missing cuDNN, missing TensorRT libraries) with
only a log line and carries on with the next one. hmrt reads back which providers the session
really registered: an explicitly requested provider that did not load raises
BackendUnavailableError, and the backend's ``name`` always says which one runs.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from hmrt.runtime.backends.base import Backend
from hmrt.runtime.cache import cache_dir
from hmrt.runtime.errors import BackendUnavailableError, ModelLoadError, require
from hmrt.runtime.model_info import OUTPUTS, check_outputs, parse_metadata

CPU, CUDA, TRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"
# backend name -> the providers it asks for, fastest first.
PROVIDER_CHOICES: dict[str, tuple[str, ...]] = {
    "onnxruntime": (TRT, CUDA, CPU),
    "onnxruntime-trt": (TRT,),
    "onnxruntime-cuda": (CUDA,),
    "onnxruntime-cpu": (CPU,),
}


def available_providers() -> list[str]:
    """Execution providers of the installed onnxruntime ([] when it is not installed)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return []
    return list(ort.get_available_providers())


def _provider_options(provider: str) -> dict[str, str]:
    if provider == TRT:
        # Without a cache the TensorRT EP rebuilds its engine on every start (minutes).
        path = cache_dir() / "ort_tensorrt"
        path.mkdir(parents=True, exist_ok=True)
        return {
            "trt_engine_cache_enable": "True",
            "trt_engine_cache_path": str(path),
            "trt_timing_cache_enable": "True",
        }
    return {}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1][:300] if text else type(exc).__name__


class OnnxRuntimeBackend(Backend):
    """Runs an hmrt ``.onnx`` file in ONNX Runtime.

    Args:
        path: the ``.onnx`` file.
        backend: one of :data:`PROVIDER_CHOICES` (``onnxruntime`` = best available).
        threads: intra-op threads (None: ONNX Runtime's default, one per physical core).
        spin: let idle ORT worker threads spin; off by default because hmrt's pipeline runs
            capture and rendering threads beside inference on small CPUs.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        backend: str = "onnxruntime",
        threads: int | None = None,
        spin: bool = False,
    ):
        ort = require("onnxruntime", "the onnxruntime backend", 'pip install "hmrt[ort]"')
        self.notes: list[str] = []
        path = Path(path)
        if backend not in PROVIDER_CHOICES:
            raise BackendUnavailableError(
                f"unknown ONNX Runtime backend {backend!r}; choose one of "
                f"{', '.join(PROVIDER_CHOICES)}"
            )
        if not path.is_file():
            raise ModelLoadError(f"{path}: model file not found; check the path")
        wanted = PROVIDER_CHOICES[backend]
        available = set(ort.get_available_providers())
        providers = [p for p in wanted if p in available]
        skipped = [p for p in wanted if p not in available]
        if not providers:
            raise BackendUnavailableError(
                f"backend {backend!r} needs {' or '.join(wanted)}, which this onnxruntime "
                f"({ort.__version__}) does not provide (it has {', '.join(sorted(available))}); "
                "install onnxruntime-gpu with CUDA/TensorRT, or use --backend onnxruntime-cpu"
            )
        self.notes += [f"{p} not available in onnxruntime {ort.__version__}" for p in skipped]
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.inter_op_num_threads = 1
        if threads is not None:
            if threads < 1:
                raise BackendUnavailableError(f"threads must be >= 1, got {threads}")
            opts.intra_op_num_threads = int(threads)
        if not spin:
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3  # errors only: hmrt reports provider problems itself
        self._session = self._create(ort, path, opts, providers, backend)
        active = list(self._session.get_providers())
        lost = [p for p in providers if p not in active and p != CPU]
        if lost and backend != "onnxruntime":
            raise BackendUnavailableError(
                f"backend {backend!r}: ONNX Runtime could not start {', '.join(lost)} "
                "(driver, CUDA/cuDNN or TensorRT libraries missing?); hmrt does not fall back "
                "silently: fix the install or choose another --backend"
            )
        self.notes += [f"{p} failed to start, using {active[0]}" for p in lost]
        self.provider = active[0]
        self.name = f"onnxruntime[{self.provider}]"
        inputs = self._session.get_inputs()
        if len(inputs) != 1 or inputs[0].name != "image":
            raise ModelLoadError(
                f"{path}: expected one input named 'image', found "
                f"{[i.name for i in inputs]}; re-export it with `hmrt export`"
            )
        names = [o.name for o in self._session.get_outputs()]
        check_outputs(str(path), names)
        v_shape = next(o.shape for o in self._session.get_outputs() if o.name == "vertices")
        self.num_vertices = (
            v_shape[1] if len(v_shape) == 3 and isinstance(v_shape[1], int) else None
        )
        self.output_names = [n for n in OUTPUTS if n in names]
        self.info = parse_metadata(str(path), self._session.get_modelmeta().custom_metadata_map)
        batch = inputs[0].shape[0]
        self.max_batch = batch if isinstance(batch, int) and batch > 0 else None
        self.threads = threads

    def _create(self, ort, path: Path, opts, providers: list[str], backend: str):
        """A session on ``providers``; a provider that fails to start is told apart from a
        bad file by retrying on the CPU alone (``auto`` keeps the CPU session, with a note)."""
        errors: list[Exception] = []
        attempts = [providers] if providers == [CPU] else [providers, [CPU]]
        for attempt in attempts:
            try:
                session = ort.InferenceSession(
                    str(path), sess_options=opts,
                    providers=[(p, _provider_options(p)) for p in attempt],
                )  # fmt: skip
            except Exception as exc:  # ORT raises several pybind exception types
                errors.append(exc)
                continue
            if attempt is providers:
                return session
            failed = ", ".join(p for p in providers if p != CPU)
            if backend != "onnxruntime":
                raise BackendUnavailableError(
                    f"backend {backend!r}: ONNX Runtime could not start {failed} "
                    f"({_first_line(errors[0])}); hmrt does not fall back silently: fix the "
                    "install (driver, CUDA/cuDNN, TensorRT libraries) or choose another --backend"
                )
            self.notes.append(f"{failed} failed to start ({_first_line(errors[0])})")
            return session
        raise ModelLoadError(
            f"{path} cannot be loaded by ONNX Runtime ({_first_line(errors[-1])}); the file "
            "is corrupt or not an ONNX model: re-export it with `hmrt export`"
        ) from errors[-1]

    def infer(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Run one batch ``(N, 3, H, W)`` float32 and return the outputs by name."""
        outs = self._session.run(self.output_names, {"image": images})
        return dict(zip(self.output_names, outs))

    def close(self) -> None:
        """Drop the session (ONNX Runtime frees it when the last reference goes)."""
        self._session = None  # type: ignore[assignment]
