"""Legacy implicit INT8 for TensorRT 8.6 / 10.x: an ``IInt8EntropyCalibrator2`` over hmrt's crops.

Only for building a graph *without* Q/DQ on a weakly typed TensorRT (deprecated in 10.1, gone in
11.0, where explicit Q/DQ from ``hmrt calibrate`` is the only INT8 path; shared/research/
tensorrt.md §1.4, §5.3). The class is made by :func:`make_entropy_calibrator` only when the
installed TensorRT has ``IInt8EntropyCalibrator2`` (a feature test, not a version number).
``python export/build_engine.py --int8 --int8-mode legacy`` uses it (:mod:`hmrt.export.int8_build`).

Everything that is not TensorRT lives in :class:`CalibratorCore` and is tested on CPU: fixed
shape host batches (the calibration profile's batch size), one device buffer written through a
pluggable :class:`DeviceCopier` (cuda-python or pycuda via :mod:`hmrt.runtime.backends.cuda_api`
on a GPU, :class:`HostCopier` in tests and dry runs), and the calibration cache: read when the
file exists (TensorRT then skips calibration: rebuilds are fast and reproducible), written
atomically when TensorRT produces it. For explicit-batch networks the batch is part of the input
shape, so :meth:`CalibratorCore.get_batch_size` returns 1, as Polygraphy's calibrator does.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from hmrt.runtime.errors import HmrtError, InputError


class CalibratorUnavailableError(HmrtError):
    """The installed TensorRT has no implicit INT8 calibrator (TensorRT 11) or no INT8 config."""


class DeviceCopier(Protocol):
    """Where calibration batches go: device memory allocation and host-to-device copies."""

    def alloc(self, nbytes: int) -> int:
        """Allocate ``nbytes``; return the pointer TensorRT will read."""

    def upload(self, ptr: int, host: np.ndarray) -> None:
        """Copy ``host`` (contiguous) to ``ptr``; complete when this returns."""

    def free(self) -> None:
        """Release everything allocated."""


class HostCopier:
    """A copier whose "device" is host memory (tests, dry runs without a GPU)."""

    def __init__(self) -> None:
        self._buffers: dict[int, np.ndarray] = {}
        self.uploads = 0

    def alloc(self, nbytes: int) -> int:
        """A host buffer of ``nbytes``; its address is the pointer."""
        buf = np.zeros(int(nbytes), np.uint8)
        ptr = buf.ctypes.data
        self._buffers[ptr] = buf
        return ptr

    def upload(self, ptr: int, host: np.ndarray) -> None:
        """``memmove`` into the buffer at ``ptr`` (bounds-checked)."""
        buf = self._buffers[ptr]
        if host.nbytes > buf.nbytes:
            raise ValueError(f"upload of {host.nbytes} bytes into a {buf.nbytes}-byte buffer")
        src = np.ascontiguousarray(host)
        ctypes.memmove(ptr, src.ctypes.data, src.nbytes)
        self.uploads += 1

    def read(self, ptr: int, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
        """What a reader of ``ptr`` sees (a copy)."""
        return self._buffers[ptr].view(dtype)[: int(np.prod(shape))].reshape(shape).copy()

    def free(self) -> None:
        """Drop the buffers."""
        self._buffers.clear()


class CudaApiCopier:
    """Device memory through the runtime's CUDA binding (cuda-python or pycuda)."""

    def __init__(self, cuda: Any = None, device: int = 0):
        if cuda is None:
            from hmrt.runtime.backends.cuda_api import open_cuda

            cuda = open_cuda("auto", device)
        self.cuda = cuda
        self.stream = cuda.stream()
        self._owners: list[object] = []

    def alloc(self, nbytes: int) -> int:
        """``cudaMalloc`` (through the binding)."""
        ptr, owner = self.cuda.device_alloc(int(nbytes))
        self._owners.append(owner)
        return int(ptr)

    def upload(self, ptr: int, host: np.ndarray) -> None:
        """Async copy on the copier's stream, then synchronise (TensorRT reads right after)."""
        self.cuda.htod(ptr, np.ascontiguousarray(host), self.stream)
        self.cuda.synchronize(self.stream)

    def free(self) -> None:
        """Free device buffers and the stream."""
        for owner in self._owners:
            self.cuda.free(owner)
        self._owners.clear()
        self.cuda.free_stream(self.stream)


class CalibrationBatcher:
    """Fixed-shape ``(batch, 3, H, W)`` float32 batches over calibration crops.

    TensorRT calibrates at the calibration profile's shape, so every batch has exactly
    ``batch`` items: the remainder (fewer than ``batch`` crops) is dropped, and a set smaller
    than one batch is repeated to fill it.
    """

    def __init__(self, images: np.ndarray, batch: int):
        images = np.asarray(images)
        if images.ndim != 4 or len(images) == 0:
            raise InputError(
                f"calibration crops must be (N, 3, H, W) with N >= 1, got {images.shape}"
            )
        if batch < 1:
            raise InputError(f"calibration batch size must be >= 1, got {batch}")
        self.images = images.astype(np.float32, copy=False)
        self.batch = int(batch)
        if len(self.images) < self.batch:
            reps = -(-self.batch // len(self.images))
            self.images = np.concatenate([self.images] * reps)[: self.batch]
        self.count = len(self.images) // self.batch
        self.dropped = len(images) - self.count * self.batch if len(images) >= batch else 0

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of every batch."""
        return (self.batch, *self.images.shape[1:])

    @property
    def nbytes(self) -> int:
        """Bytes of one batch."""
        return int(np.prod(self.shape)) * 4

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(self.count):
            yield np.ascontiguousarray(self.images[i * self.batch : (i + 1) * self.batch])


class CalibratorCore:
    """The calibrator's logic outside TensorRT: batches -> device pointer, cache read/write."""

    def __init__(
        self,
        batcher: CalibrationBatcher | None,
        cache_path: str | os.PathLike | None,
        copier: DeviceCopier | None = None,
        input_name: str = "image",
    ):
        self.batcher = batcher
        self.cache_path = Path(cache_path) if cache_path is not None else None
        self.copier = copier
        self.input_name = input_name
        self._iter: Iterator[np.ndarray] | None = None
        self._ptr: int | None = None
        self.batches_served = 0

    def get_batch_size(self) -> int:
        """1: explicit-batch networks carry the batch in the input shape."""
        return 1

    def get_batch(self, names: list[str]) -> list[int] | None:
        """Device pointers for ``names`` (the one input), or None when the crops are used up."""
        if self.batcher is None:
            raise InputError(
                "the calibration cache was not usable and no calibration crops were given; "
                "pass --calib-data"
            )
        unknown = [n for n in names if n != self.input_name]
        if unknown:
            raise InputError(
                f"TensorRT asked calibration data for {unknown}; hmrt models have one input "
                f"'{self.input_name}'"
            )
        if self._iter is None:
            self._iter = iter(self.batcher)
        batch = next(self._iter, None)
        if batch is None:
            self.release()
            return None
        if self.copier is None:
            self.copier = CudaApiCopier()
        if self._ptr is None:
            self._ptr = self.copier.alloc(self.batcher.nbytes)
        self.copier.upload(self._ptr, batch)
        self.batches_served += 1
        return [self._ptr] * len(names)

    def read_calibration_cache(self) -> bytes | None:
        """The cache file's bytes (TensorRT then skips calibration), or None to calibrate."""
        if self.cache_path is None or not self.cache_path.is_file():
            return None
        data = self.cache_path.read_bytes()
        return data or None

    def write_calibration_cache(self, cache: object) -> None:
        """Write what TensorRT hands over (bytes-like) atomically."""
        if self.cache_path is None:
            return
        from hmrt.runtime.atomic import write_bytes_atomic

        write_bytes_atomic(self.cache_path, bytes(memoryview(cache)))

    def release(self) -> None:
        """Free the device buffer (after the last batch, or on teardown)."""
        if self.copier is not None and self._ptr is not None:
            self.copier.free()
        self._ptr = None


def make_entropy_calibrator(trt: Any, core: CalibratorCore) -> Any:
    """An ``IInt8EntropyCalibrator2`` subclass instance delegating to ``core``.

    Raises :class:`CalibratorUnavailableError` when TensorRT has no such class (11.x).
    """
    base = getattr(trt, "IInt8EntropyCalibrator2", None)
    if base is None:
        raise CalibratorUnavailableError(
            f"TensorRT {getattr(trt, '__version__', '?')} has no IInt8EntropyCalibrator2 "
            "(implicit INT8 was removed in 11.0); build from the Q/DQ graph: "
            "hmrt calibrate --onnx MODEL.onnx --data synth --out MODEL.int8.onnx"
        )

    class HmrtEntropyCalibrator(base):  # type: ignore[misc, valid-type]
        """TensorRT's entropy calibrator fed by hmrt's calibration crops."""

        def __init__(self) -> None:
            base.__init__(self)  # TensorRT's trampoline classes need the explicit call
            self.core = core

        def get_batch_size(self) -> int:
            return self.core.get_batch_size()

        def get_batch(self, names: list[str]) -> list[int] | None:
            return self.core.get_batch(names)

        def read_calibration_cache(self) -> bytes | None:
            return self.core.read_calibration_cache()

        def write_calibration_cache(self, cache: object) -> None:
            self.core.write_calibration_cache(cache)

    return HmrtEntropyCalibrator()


def attach_calibrator(trt: Any, config: Any, calibrator: Any, profile: Any = None) -> None:
    """Weakly typed builds: set the INT8 flag, the calibrator and its profile on ``config``."""
    if not hasattr(config, "int8_calibrator") or not hasattr(trt.BuilderFlag, "INT8"):
        raise CalibratorUnavailableError(
            f"TensorRT {getattr(trt, '__version__', '?')} has no implicit INT8 calibration; "
            "use the Q/DQ graph from hmrt calibrate"
        )
    config.set_flag(trt.BuilderFlag.INT8)
    config.int8_calibrator = calibrator
    if profile is not None and hasattr(config, "set_calibration_profile"):
        config.set_calibration_profile(profile)


def calibrator_core(
    onnx_path: str | os.PathLike,
    data: str,
    n: int,
    batch: int,
    cache_path: str | os.PathLike | None,
    seed: int | None = None,
    body: str | os.PathLike | None = None,
    copier: DeviceCopier | None = None,
    progress: bool = True,
) -> CalibratorCore:
    """A :class:`CalibratorCore` for an hmrt ONNX: crops from ``data`` through the runtime's
    preprocessing, batched to ``batch`` (the calibration profile's batch size).

    With an existing ``cache_path`` no crops are made: TensorRT reads the cache and never asks.
    """
    from hmrt.calib.data import (
        CALIB_SEED,
        calibration_images,
        open_calibration_source,
        preprocessor_from_onnx,
    )

    if cache_path is not None and Path(cache_path).is_file():
        return CalibratorCore(None, cache_path, copier)
    pre = preprocessor_from_onnx(onnx_path)
    source = open_calibration_source(data, n, CALIB_SEED if seed is None else seed, body)
    images = calibration_images(source, pre, progress)
    return CalibratorCore(CalibrationBatcher(images, batch), cache_path, copier)
