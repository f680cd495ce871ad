"""The interface every inference backend implements (ONNX Runtime, TensorRT).

A backend owns one loaded model and turns a normalised ``(N, 3, H, W)`` float32 batch into the
contract's output dict; everything before (cropping) and after (cameras, smoothing) is shared
numpy code in the Reconstructor, so backends stay small and interchangeable.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

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
