"""The few CUDA calls the TensorRT backend needs, over cuda-python (default) or pycuda.

cuda-python (``from cuda.bindings import runtime as cudart``, 12.6+ / 13.x) returns error
tuples that are checked on every call, supports CUDA graphs, and uses the primary context, so
it mixes with PyTorch or CuPy in the same process. pycuda is the alternative for JetPack
images that ship it (``pycuda.autoprimaryctx``, the primary context too); it has no graph API,
so CUDA graphs need cuda-python. Host buffers are pinned (page-locked) so copies are truly
asynchronous. Pin ``cuda-python`` to the driver's CUDA major (12.x for CUDA-12 drivers such as
JetPack 6, 13.x for CUDA 13).

Nothing here is exercised without a GPU; see tests/test_runtime_tensorrt.py for what is
checked on CPU-only machines.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Iterator

import numpy as np

from hmrt.runtime.errors import BackendUnavailableError, HmrtError


class CudaError(HmrtError):
    """A CUDA runtime call failed (message names the call and the CUDA error)."""


class CudaApi:
    """Interface: device query, stream, pinned host / device memory, async copies, graphs."""

    name = "none"
    supports_graphs = False

    def device_properties(self) -> tuple[str, tuple[int, int]]:
        """(GPU name, compute capability) of the current device."""
        raise NotImplementedError

    @contextlib.contextmanager
    def activate(self) -> Iterator[None]:
        """Make the device/context current in the calling thread for the block."""
        yield

    def stream(self) -> object:
        """A new non-blocking stream (never the legacy default stream)."""
        raise NotImplementedError

    def stream_handle(self, stream: object) -> int:
        """The ``cudaStream_t`` as an integer, for ``execute_async_v3``."""
        raise NotImplementedError

    def host_empty(self, nbytes: int) -> tuple[np.ndarray, object]:
        """Pinned host buffer as a ``uint8`` numpy view, plus the owner to free later."""
        raise NotImplementedError

    def device_alloc(self, nbytes: int) -> tuple[int, object]:
        """Device buffer: (pointer, owner)."""
        raise NotImplementedError

    def htod(self, dst: int, src: np.ndarray, stream: object) -> None:
        """Async copy host -> device (``src`` must be pinned and contiguous)."""
        raise NotImplementedError

    def dtoh(self, dst: np.ndarray, src: int, stream: object) -> None:
        """Async copy device -> host (``dst`` must be pinned and contiguous)."""
        raise NotImplementedError

    def synchronize(self, stream: object) -> None:
        """Wait for all work queued on ``stream``."""
        raise NotImplementedError

    def free(self, owner: object) -> None:
        """Free a buffer returned by host_empty / device_alloc."""

    def free_stream(self, stream: object) -> None:
        """Destroy a stream from :meth:`stream`."""

    # CUDA graphs (cuda-python only)
    def capture(self, stream: object, enqueue) -> object | None:
        """Capture ``enqueue()`` on ``stream`` into an executable graph; None if not capturable."""
        return None

    def launch(self, graph: object, stream: object) -> None:
        """Replay a captured graph on ``stream``."""
        raise NotImplementedError

    def free_graph(self, graph: object) -> None:
        """Destroy an executable graph."""


class CudaPython(CudaApi):
    """cuda-python runtime bindings (``cuda.bindings.runtime``)."""

    name = "cuda-python"
    supports_graphs = True

    def __init__(self, device: int = 0):
        try:
            from cuda.bindings import runtime as cudart
        except ImportError as exc:
            raise BackendUnavailableError(
                "the tensorrt backend needs cuda-python (`pip install cuda-python`, major "
                "version = your driver's CUDA major) or pycuda"
            ) from exc
        self.rt = cudart
        self.device = int(device)
        count = self._call("cudaGetDeviceCount", cudart.cudaGetDeviceCount())
        if self.device >= count:
            raise BackendUnavailableError(f"CUDA device {self.device} not found ({count} GPUs)")
        self._call("cudaSetDevice", cudart.cudaSetDevice(self.device))

    def _call(self, what: str, result):
        """Unpack a cuda-python ``(err, *values)`` tuple, raising on any error."""
        if not isinstance(result, tuple):
            result = (result,)
        err, rest = result[0], result[1:]
        if int(err) != int(self.rt.cudaError_t.cudaSuccess):
            name = self.rt.cudaGetErrorName(err)
            label = name[1].decode() if isinstance(name, tuple) else str(err)
            if what in ("cudaGetDeviceCount", "cudaSetDevice"):
                raise BackendUnavailableError(
                    f"no usable CUDA GPU ({what}: {label}); check the NVIDIA driver, or "
                    "that cuda-python's major version matches the driver's CUDA version"
                )
            raise CudaError(f"CUDA call {what} failed: {label}")
        if not rest:
            return None
        return rest[0] if len(rest) == 1 else rest

    def device_properties(self) -> tuple[str, tuple[int, int]]:
        props = self._call("cudaGetDeviceProperties", self.rt.cudaGetDeviceProperties(self.device))
        raw = props.name
        name = raw.split(b"\x00")[0].decode() if isinstance(raw, bytes) else str(raw)
        return name, (int(props.major), int(props.minor))

    @contextlib.contextmanager
    def activate(self) -> Iterator[None]:
        # The runtime API binds the primary context of the current device per thread.
        self._call("cudaSetDevice", self.rt.cudaSetDevice(self.device))
        yield

    def stream(self) -> object:
        return self._call(
            "cudaStreamCreateWithFlags",
            self.rt.cudaStreamCreateWithFlags(self.rt.cudaStreamNonBlocking),
        )

    def stream_handle(self, stream: object) -> int:
        try:
            from cuda.bindings.utils import get_cuda_native_handle
        except ImportError:  # cuda-python 12.x
            return int(stream)  # type: ignore[call-overload]
        return int(get_cuda_native_handle(stream))

    def host_empty(self, nbytes: int) -> tuple[np.ndarray, object]:
        ptr = self._call("cudaMallocHost", self.rt.cudaMallocHost(max(int(nbytes), 1)))
        buf = (ctypes.c_uint8 * max(int(nbytes), 1)).from_address(int(ptr))
        return np.frombuffer(buf, dtype=np.uint8)[:nbytes], ("host", ptr)

    def device_alloc(self, nbytes: int) -> tuple[int, object]:
        ptr = self._call("cudaMalloc", self.rt.cudaMalloc(max(int(nbytes), 1)))
        return int(ptr), ("device", ptr)

    def htod(self, dst: int, src: np.ndarray, stream: object) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._call(
            "cudaMemcpyAsync",
            self.rt.cudaMemcpyAsync(dst, src.ctypes.data, src.nbytes, kind, stream),
        )

    def dtoh(self, dst: np.ndarray, src: int, stream: object) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._call(
            "cudaMemcpyAsync",
            self.rt.cudaMemcpyAsync(dst.ctypes.data, src, dst.nbytes, kind, stream),
        )

    def synchronize(self, stream: object) -> None:
        self._call("cudaStreamSynchronize", self.rt.cudaStreamSynchronize(stream))

    def free(self, owner: object) -> None:
        kind, ptr = owner  # type: ignore[misc]
        fn = self.rt.cudaFreeHost if kind == "host" else self.rt.cudaFree
        self._call("cudaFreeHost" if kind == "host" else "cudaFree", fn(ptr))

    def free_stream(self, stream: object) -> None:
        self._call("cudaStreamDestroy", self.rt.cudaStreamDestroy(stream))

    def capture(self, stream: object, enqueue) -> object | None:
        """Capture one ``enqueue`` into a graph (the TensorRT/trtexec pattern).

        The caller has already run ``enqueue`` once outside capture (TensorRT initialises
        lazily on the first enqueue, which must not be captured). Returns None when the engine
        is not capturable (enqueue returned False or capture was invalidated).
        """
        rt = self.rt
        mode = rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        self._call("cudaStreamBeginCapture", rt.cudaStreamBeginCapture(stream, mode))
        ok = False
        try:
            ok = bool(enqueue())
        finally:
            err, graph = rt.cudaStreamEndCapture(stream)
        if not ok or int(err) != int(rt.cudaError_t.cudaSuccess):
            if int(err) == int(rt.cudaError_t.cudaSuccess) and graph is not None:
                rt.cudaGraphDestroy(graph)
            rt.cudaGetLastError()  # clear the sticky capture-invalidated error
            return None
        try:
            exe = self._call("cudaGraphInstantiate", rt.cudaGraphInstantiate(graph, 0))
        except CudaError:
            return None
        finally:
            rt.cudaGraphDestroy(graph)
        return exe

    def launch(self, graph: object, stream: object) -> None:
        self._call("cudaGraphLaunch", self.rt.cudaGraphLaunch(graph, stream))

    def free_graph(self, graph: object) -> None:
        self._call("cudaGraphExecDestroy", self.rt.cudaGraphExecDestroy(graph))


class PyCuda(CudaApi):
    """pycuda (``pycuda.driver`` with the retained primary context); no CUDA graphs."""

    name = "pycuda"
    supports_graphs = False

    def __init__(self, device: int = 0):
        try:
            import pycuda.driver as drv
        except ImportError as exc:
            raise BackendUnavailableError(
                "the tensorrt backend with cuda='pycuda' needs pycuda (`pip install pycuda`, "
                "built against your CUDA toolkit)"
            ) from exc
        try:
            drv.init()
            self._device = drv.Device(int(device))
            # The primary context (shared with the CUDA runtime, TensorRT, torch), not a new one.
            self._ctx = self._device.retain_primary_context()
        except drv.Error as exc:
            raise BackendUnavailableError(f"no usable CUDA GPU (pycuda: {exc})") from exc
        self.drv = drv

    def device_properties(self) -> tuple[str, tuple[int, int]]:
        major, minor = self._device.compute_capability()
        return str(self._device.name()), (int(major), int(minor))

    @contextlib.contextmanager
    def activate(self) -> Iterator[None]:
        # pycuda contexts are per thread: push the primary context for the call, then pop.
        self._ctx.push()
        try:
            yield
        finally:
            self.drv.Context.pop()

    def stream(self) -> object:
        return self.drv.Stream()

    def stream_handle(self, stream: object) -> int:
        return int(stream.handle)  # type: ignore[attr-defined]

    def host_empty(self, nbytes: int) -> tuple[np.ndarray, object]:
        buf = self.drv.pagelocked_empty(max(int(nbytes), 1), np.uint8)
        return buf[:nbytes], buf

    def device_alloc(self, nbytes: int) -> tuple[int, object]:
        mem = self.drv.mem_alloc(max(int(nbytes), 1))
        return int(mem), mem

    def htod(self, dst: int, src: np.ndarray, stream: object) -> None:
        self.drv.memcpy_htod_async(dst, src, stream)

    def dtoh(self, dst: np.ndarray, src: int, stream: object) -> None:
        self.drv.memcpy_dtoh_async(dst, src, stream)

    def synchronize(self, stream: object) -> None:
        stream.synchronize()  # type: ignore[attr-defined]

    def free(self, owner: object) -> None:
        if hasattr(owner, "free"):
            owner.free()  # DeviceAllocation; pinned arrays free with the array


CUDA_APIS = {"cuda-python": CudaPython, "pycuda": PyCuda}


def open_cuda(which: str = "auto", device: int = 0) -> CudaApi:
    """``auto`` tries cuda-python, then pycuda; a named one must work or raise."""
    if which != "auto":
        if which not in CUDA_APIS:
            raise BackendUnavailableError(
                f"unknown CUDA binding {which!r}; choose auto, cuda-python or pycuda"
            )
        return CUDA_APIS[which](device)
    errors = []
    for cls in (CudaPython, PyCuda):
        try:
            return cls(device)
        except BackendUnavailableError as exc:
            errors.append(f"{cls.name}: {exc}")
    raise BackendUnavailableError("; ".join(errors))
