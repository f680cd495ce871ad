"""TensorRT backend: runs an hmrt ``.engine`` with the 8.6 / 10.x / 11.x runtime API.

Follows shared/research/tensorrt.md sections 2 and 9: tensor-name I/O (``num_io_tensors``,
``get_tensor_name/mode/dtype``), ``set_input_shape`` + ``infer_shapes``, ``set_tensor_address``
and ``execute_async_v3`` on an explicit non-default stream, numpy dtypes from ``trt.nptype``
(bytes for BF16/FP8/INT4), buffers sized once to the optimisation profile's maximum, pinned
host buffers, and optional CUDA-graph replay with a fallback to plain enqueue. The sidecar
JSON is checked *before* the plan is deserialised. No binding indices, ``execute_async_v2``
or ``max_batch_size`` (all removed in TensorRT 10). Features are tested with ``hasattr``.

Untested on a GPU in this repository's CI (no GPU there); the API names are checked against
the ``tensorrt_lean`` 11.4 module in tests/test_runtime_tensorrt.py.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
from pathlib import Path
from types import ModuleType

import numpy as np

from hmrt.runtime.backends.base import Backend, check_model_file
from hmrt.runtime.backends.cuda_api import CudaApi, open_cuda
from hmrt.runtime.backends.engine_sidecar import check_sidecar, read_sidecar
from hmrt.runtime.errors import BackendUnavailableError, ModelLoadError
from hmrt.runtime.model_info import (
    OUTPUTS,
    check_output_shapes,
    check_outputs,
    check_pose_joints,
    parse_metadata,
)

log = logging.getLogger("hmrt.runtime")
TENSORRT_MODULES = ("tensorrt", "tensorrt_lean", "tensorrt_dispatch")


def import_tensorrt() -> ModuleType:
    """The first importable of ``tensorrt``, ``tensorrt_lean``, ``tensorrt_dispatch``.

    The lean and dispatch packages have the runtime classes but no builder; they only run
    version-compatible engines (checked against the sidecar before loading).
    """
    errors = []
    for name in TENSORRT_MODULES:
        try:
            return importlib.import_module(name)
        except ImportError as exc:  # a broken install can also raise OSError-derived errors
            errors.append(f"{name}: {exc}")
    raise BackendUnavailableError(
        "the tensorrt backend needs TensorRT's Python package (tensorrt, tensorrt_lean or "
        'tensorrt_dispatch), none is installed: pip install "hmrt[trt]" on an NVIDIA machine'
    )


def is_lean(trt: ModuleType) -> bool:
    """True for ``tensorrt_lean`` / ``tensorrt_dispatch`` (no Builder; version-compatible only)."""
    return trt.__name__.split(".")[0] != "tensorrt"


def numpy_dtype(trt: ModuleType, dtype: object) -> np.dtype:
    """numpy dtype of a TensorRT tensor; uint8 (raw bytes) for BF16/FP8/INT4/FP4."""
    try:
        return np.dtype(trt.nptype(dtype))
    except TypeError:
        return np.dtype(np.uint8)


class _Tensor:
    """One I/O tensor with its pinned host and device buffers (sized to the profile max)."""

    def __init__(self, name: str, dtype: np.dtype, max_shape: tuple[int, ...], cuda: CudaApi):
        self.name, self.dtype, self.max_shape = name, dtype, max_shape
        self.nbytes = int(np.prod(max_shape)) * dtype.itemsize
        self.host_bytes, self._host_owner = cuda.host_empty(self.nbytes)
        self.device, self._device_owner = cuda.device_alloc(self.nbytes)
        self.shape = max_shape

    def host(self, shape: tuple[int, ...]) -> np.ndarray:
        """The pinned host buffer viewed as ``shape`` of this tensor's dtype."""
        n = int(np.prod(shape)) * self.dtype.itemsize
        return self.host_bytes[:n].view(self.dtype).reshape(shape)

    def free(self, cuda: CudaApi) -> None:
        cuda.free(self._host_owner)
        cuda.free(self._device_owner)


class TensorRTBackend(Backend):
    """Runs a serialised TensorRT engine with its sidecar JSON.

    Args:
        path: the ``.engine`` (plan) file; ``<path>.json`` must sit next to it.
        cuda: ``auto`` (cuda-python, else pycuda), ``cuda-python`` or ``pycuda``.
        cuda_graph: capture each batch size's enqueue in a CUDA graph and replay it (falls
            back to normal enqueue if the engine is not capturable; cuda-python only).
        device: CUDA device index.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        cuda: str = "auto",
        cuda_graph: bool = False,
        device: int = 0,
    ):
        self.notes: list[str] = []
        self._tensors: dict[str, _Tensor] = {}
        self._graphs: dict[int, object] = {}
        self._stream = None
        path = Path(path)
        check_model_file(path, "engine file")
        trt = import_tensorrt()
        self.trt = trt
        sidecar = read_sidecar(path)
        lean = is_lean(trt)
        # Version checks need no GPU, so they run before touching CUDA at all.
        check_sidecar(sidecar, trt.__version__, lean_runtime=lean)
        self.cuda = open_cuda(cuda, device)
        with self.cuda.activate():
            gpu_name, cc = self.cuda.device_properties()
            for warning in check_sidecar(
                sidecar, trt.__version__, gpu_name, cc, lean, check_onnx=False
            ):
                log.warning(warning)
                self.notes.append(warning)
            self.info = parse_metadata(str(path), sidecar.metadata)
            self._load(path, sidecar.version_compatible)
            self._allocate(path)
            self._stream = self.cuda.stream()
        self.use_graph = bool(cuda_graph) and self.cuda.supports_graphs
        if cuda_graph and not self.cuda.supports_graphs:
            self.notes.append(f"CUDA graphs need cuda-python; {self.cuda.name} runs without")
        self.name = f"tensorrt[{trt.__version__}, {self.cuda.name}, {gpu_name}]"

    # -- loading -------------------------------------------------------------------------
    def _load(self, path: Path, version_compatible: bool) -> None:
        trt = self.trt
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        if version_compatible and hasattr(self._runtime, "engine_host_code_allowed"):
            # A version-compatible plan embeds the lean runtime (host code): only load
            # engines you built or trust, as with any executable.
            self._runtime.engine_host_code_allowed = True
        engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            raise ModelLoadError(
                f"{path}: TensorRT could not deserialise the engine (corrupt or truncated "
                "file?); rebuild it with python export/build_engine.py"
            )
        self._engine = engine
        context = engine.create_execution_context()
        if context is None:
            raise ModelLoadError(f"{path}: TensorRT could not create an execution context")
        self._context = context

    def _allocate(self, path: Path) -> None:
        trt, engine, ctx = self.trt, self._engine, self._context
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if inputs != ["image"]:
            raise ModelLoadError(f"{path}: expected one input 'image', found {inputs}")
        check_outputs(str(path), outputs)
        # Static output dims against the contract (-1 = dynamic), before any buffer is sized.
        shapes = {n: [int(d) for d in engine.get_tensor_shape(n)] for n in outputs}
        check_output_shapes(str(path), shapes)
        # Optional outputs (rotmats, betas, pose_joints) are bound by name when the engine has
        # them, exactly as the ONNX Runtime backend reads them.
        check_pose_joints(str(path), self.info, shapes.get("pose_joints"))
        self.output_names = [n for n in OUTPUTS if n in outputs]
        # Inputs: (min, opt, max) of profile 0 (get_tensor_profile_shape is input-only).
        shape = tuple(engine.get_tensor_shape("image"))
        if -1 in shape:
            _min, _opt, max_shape = engine.get_tensor_profile_shape("image", 0)
            max_shape = tuple(int(d) for d in max_shape)
        else:
            max_shape = tuple(int(d) for d in shape)
        self.max_batch = max_shape[0]
        self._input_chw = max_shape[1:]
        res = self.info.res
        if tuple(max_shape[1:]) != (3, res, res):
            raise ModelLoadError(
                f"{path}: engine input {max_shape} does not match its metadata size {res}; "
                "rebuild the engine from the right ONNX file"
            )
        in_dtype = numpy_dtype(trt, engine.get_tensor_dtype("image"))
        self._tensors["image"] = _Tensor("image", in_dtype, max_shape, self.cuda)
        # Outputs: sized from infer_shapes at the maximum input shape.
        self._set_batch(self.max_batch, set_addresses=False)
        for name in outputs:
            out_shape = tuple(int(d) for d in ctx.get_tensor_shape(name))
            dtype = numpy_dtype(trt, engine.get_tensor_dtype(name))
            self._tensors[name] = _Tensor(name, dtype, out_shape, self.cuda)
        for name, tensor in self._tensors.items():
            ctx.set_tensor_address(name, tensor.device)
        self.num_vertices = int(self._tensors["vertices"].max_shape[1])

    def _set_batch(self, n: int, set_addresses: bool = True) -> None:
        ctx = self._context
        if not ctx.set_input_shape("image", (n, *self._input_chw)):
            raise ModelLoadError(f"TensorRT rejected input shape {(n, *self._input_chw)}")
        missing = ctx.infer_shapes()
        if missing:
            raise ModelLoadError(f"TensorRT could not infer output shapes for {missing}")
        for name, tensor in self._tensors.items():
            tensor.shape = tuple(int(d) for d in ctx.get_tensor_shape(name))
            if set_addresses:
                ctx.set_tensor_address(name, tensor.device)
        self._batch = n

    # -- inference -----------------------------------------------------------------------
    def _enqueue(self) -> bool:
        return bool(self._context.execute_async_v3(self.cuda.stream_handle(self._stream)))

    def _run(self) -> None:
        n = self._batch
        if self.use_graph:
            graph = self._graphs.get(n)
            if graph is None and n not in self._graphs:
                # Warm-up enqueue outside capture (TensorRT's lazy init must not be captured).
                if not self._enqueue():
                    raise ModelLoadError("TensorRT execute_async_v3 failed")
                self.cuda.synchronize(self._stream)
                graph = self.cuda.capture(self._stream, self._enqueue)
                self._graphs[n] = graph
                if graph is None:
                    self.notes.append("engine is not CUDA-graph capturable; using enqueue")
            if graph is not None:
                self.cuda.launch(graph, self._stream)
                return
        if not self._enqueue():
            raise ModelLoadError("TensorRT execute_async_v3 failed (see the TensorRT log)")

    def infer(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Run ``(N, 3, H, W)`` float32 through the engine in chunks of the profile's max batch."""
        chunks = [self._infer_chunk(images[i : i + self.max_batch])
                  for i in range(0, len(images), self.max_batch)]  # fmt: skip
        if len(chunks) == 1:
            return chunks[0]
        return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}

    def _infer_chunk(self, images: np.ndarray) -> dict[str, np.ndarray]:
        n = len(images)
        with self.cuda.activate():
            if n != getattr(self, "_batch", None):
                self._set_batch(n)
            image = self._tensors["image"]
            host_in = image.host(image.shape)
            np.copyto(host_in, images, casting="same_kind")
            self.cuda.htod(image.device, host_in, self._stream)
            self._run()
            hosts = {}
            for name in self.output_names:
                t = self._tensors[name]
                hosts[name] = t.host(t.shape)
                self.cuda.dtoh(hosts[name], t.device, self._stream)
            self.cuda.synchronize(self._stream)
            # Copy out of the pinned buffers: they are reused by the next call.
            return {k: v.astype(np.float32) for k, v in hosts.items()}

    def close(self) -> None:
        """Free graphs, buffers and the stream, then the context and engine."""
        cuda = getattr(self, "cuda", None)
        if cuda is None:
            return
        with cuda.activate():
            for graph in self._graphs.values():
                if graph is not None:
                    cuda.free_graph(graph)
            self._graphs.clear()
            for tensor in self._tensors.values():
                tensor.free(cuda)
            self._tensors.clear()
            if self._stream is not None:
                cuda.free_stream(self._stream)
                self._stream = None
        self._context = None
        self._engine = None
        self.cuda = None  # type: ignore[assignment]

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
