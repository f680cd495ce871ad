"""The interface every inference backend implements (ONNX Runtime, TensorRT).

A backend owns one loaded model and turns a normalised ``(N, 3, H, W)`` float32 batch into the
contract's output dict; everything before (cropping) and after (cameras, smoothing) is shared
numpy code in the Reconstructor, so backends stay small and interchangeable.
"""

from __future__ import annotations

import errno
import os
import stat
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from hmrt.runtime.errors import ModelLoadError
from hmrt.runtime.model_info import ModelInfo


class Backend(ABC):
    """One loaded model on one execution engine.

    Attributes:
        info: the model's parsed metadata.
        name: what actually runs, e.g. ``onnxruntime[CPUExecutionProvider]`` or
            ``tensorrt[11.4.0, cuda-python]``; reported in every Result.
        max_batch: the largest batch one ``infer`` call runs at once (None: unlimited);
            larger batches are split by the caller.
        notes: human-readable remarks from selection (why a faster backend was skipped).
        num_vertices: V of the ``vertices`` output ``(N, V, 3)`` (None if dynamic).
    """

    info: ModelInfo
    name: str
    max_batch: int | None = None
    notes: list[str]
    num_vertices: int | None = None

    @abstractmethod
    def infer(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Run the model on ``images`` ``(N, 3, H, W)`` float32; return outputs by name."""

    def close(self) -> None:  # noqa: B027 (optional hook: most backends need no cleanup)
        """Release native resources (sessions, GPU buffers). Safe to call twice."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_model_file(path: str | os.PathLike, what: str = "model file") -> Path:
    """Return ``path`` if it is a readable regular file, else raise ModelLoadError saying why.

    Tells apart the cases a plain ``exists()`` check lumps together as "not found": a symbolic
    link loop or a dangling link, a folder, a pipe or device such as ``/dev/stdin`` (a model is
    read twice and by size, so it must be a file on disk), and an empty file.
    """
    path = Path(path)
    try:
        st = path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ModelLoadError(
                f"{path}: symbolic link loop (the chain of links leads back to itself); fix the link "
                f"or pass the real {what}"
            ) from None
        if path.is_symlink():
            raise ModelLoadError(
                f"{path}: broken symbolic link (its target {os.readlink(path)} does not exist); "
                f"fix the link or pass the real {what}"
            ) from None
        if exc.errno == errno.EACCES:
            raise ModelLoadError(
                f"{path}: permission denied; check the file's permissions"
            ) from None
        raise ModelLoadError(f"{path}: {what} not found; check the path") from None
    if stat.S_ISDIR(st.st_mode):
        found = sorted(p.name for p in path.iterdir() if p.suffix in (".onnx", ".engine"))[:3]
        hint = f" (it holds {', '.join(found)})" if found else ""
        raise ModelLoadError(
            f"{path} is a folder, not a {what}; pass the .onnx or .engine file itself{hint}"
        )
    if not stat.S_ISREG(st.st_mode):
        raise ModelLoadError(
            f"{path} is not a regular file (a pipe, socket or device such as /dev/stdin); save "
            f"the model to a .onnx or .engine file and pass that path"
        )
    if st.st_size == 0:
        raise ModelLoadError(
            f"{path}: the file is empty (an interrupted export or copy?); export or copy it again"
        )
    return path
