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

from hmrt.runtime.backends.base import Backend, check_model_file
from hmrt.runtime.cache import cache_dir
from hmrt.runtime.errors import BackendUnavailableError, ModelLoadError, require
from hmrt.runtime.model_info import OUTPUTS, check_contract, check_output_arrays

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


def open_session(
    path: Path,
    backend: str = "onnxruntime",
    threads: int | None = None,
    spin: bool = False,
    notes: list[str] | None = None,
    fix: str = "re-export it with `hmrt export`",
) -> tuple[object, str]:
    """An ``InferenceSession`` on ``path`` with the providers of ``backend`` (one of
    :data:`PROVIDER_CHOICES`); returns ``(session, provider that runs)``.

    Why faster providers were skipped is appended to ``notes``. An explicitly requested
    provider that does not start raises BackendUnavailableError; a file ONNX Runtime cannot
    load raises ModelLoadError naming it and ``fix``. No check of hmrt's model contract here.
    """
    ort = require("onnxruntime", "the onnxruntime backend", 'pip install "hmrt[ort]"')
    notes = [] if notes is None else notes
    path = Path(path)
    if backend not in PROVIDER_CHOICES:
        raise BackendUnavailableError(
            f"unknown ONNX Runtime backend {backend!r}; choose one of {', '.join(PROVIDER_CHOICES)}"
        )
    check_model_file(path)
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
    notes += [f"{p} not available in onnxruntime {ort.__version__}" for p in skipped]
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
    session = _create_session(ort, path, opts, providers, backend, notes, fix)
    active = list(session.get_providers())
    lost = [p for p in providers if p not in active and p != CPU]
    if lost and backend != "onnxruntime":
        raise BackendUnavailableError(
            f"backend {backend!r}: ONNX Runtime could not start {', '.join(lost)} "
            "(driver, CUDA/cuDNN or TensorRT libraries missing?); hmrt does not fall back "
            "silently: fix the install or choose another --backend"
        )
    notes += [f"{p} failed to start, using {active[0]}" for p in lost]
    return session, active[0]


def _create_session(
    ort, path: Path, opts, providers: list[str], backend: str, notes: list[str], fix: str
):
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
        notes.append(f"{failed} failed to start ({_first_line(errors[0])})")
        return session
    raise ModelLoadError(
        f"{path} cannot be loaded by ONNX Runtime ({_first_line(errors[-1])}); the file "
        f"is corrupt or not an ONNX model: {fix}"
    ) from errors[-1]


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
        self.notes: list[str] = []
        path = Path(path)
        self._session, self.provider = open_session(path, backend, threads, spin, self.notes)
        self.name = f"onnxruntime[{self.provider}]"
        inputs = self._session.get_inputs()
        outputs = {o.name: o.shape for o in self._session.get_outputs()}
        # Names, shapes and metadata checked now: a wrong file fails here with one line,
        # not in the camera maths of the first frame.
        self.info = check_contract(
            str(path),
            {i.name: i.shape for i in inputs},
            outputs,
            self._session.get_modelmeta().custom_metadata_map,
        )
        v_shape = outputs["vertices"] or []
        self.num_vertices = (
            v_shape[1] if len(v_shape) == 3 and isinstance(v_shape[1], int) else None
        )
        self.output_names = [n for n in OUTPUTS if n in outputs]
        self._checked = False  # the first inference's arrays are checked once
        self._path = str(path)
        batch = inputs[0].shape[0]
        self.max_batch = batch if isinstance(batch, int) and batch > 0 else None
        self.threads = threads

    def infer(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Run one batch ``(N, 3, H, W)`` float32 and return the outputs by name."""
        outs = dict(zip(self.output_names, self._session.run(self.output_names, {"image": images})))
        if not self._checked:
            # Shapes the graph does not declare are only known now: check them once.
            check_output_arrays(self._path, outs, len(images))
            self._checked = True
        return outs

    def close(self) -> None:
        """Drop the session (ONNX Runtime frees it when the last reference goes)."""
        self._session = None  # type: ignore[assignment]
