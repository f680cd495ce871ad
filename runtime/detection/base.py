"""The detector contract: a frame in, person boxes with scores out.

Every detector returns :class:`Detections` in full-image pixels (``x0, y0, x1, y1``, continuous
coordinates, pixel centres at +0.5) with scores in [0, 1] that mean "a person is here",
already filtered to the person class, thresholded and non-maximum suppressed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from hmrt.runtime.errors import InputError


@dataclass
class Detections:
    """People found in one frame, best first.

    Attributes:
        boxes: ``(K, 4)`` float32 ``x0, y0, x1, y1`` in full-image pixels.
        scores: ``(K,)`` float32 in [0, 1].
        keypoints: optional ``(K, P, 2)`` detector keypoints in image pixels (BlazePose:
            hip centre, full-body scale point, shoulder centre, upper-body scale point).
    """

    boxes: np.ndarray
    scores: np.ndarray
    keypoints: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.boxes)

    @classmethod
    def empty(cls) -> Detections:
        """No person."""
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32))


@runtime_checkable
class PersonDetector(Protocol):
    """``detector(frame_bgr) -> Detections``; ``name`` says what runs (for reports)."""

    name: str

    def __call__(self, frame: np.ndarray) -> Detections: ...

    def close(self) -> None: ...


class CallableDetector:
    """Wraps a user callable ``frame -> (K, 4|5) boxes`` or ``(boxes, scores)``."""

    def __init__(self, fn: Callable[[np.ndarray], object], name: str = "callable"):
        self.fn = fn
        self.name = name

    def __call__(self, frame: np.ndarray) -> Detections:
        from hmrt.runtime.roi_tracker import parse_detections

        boxes, scores = parse_detections(self.fn(frame))
        order = np.argsort(-scores, kind="stable")
        return Detections(boxes[order].astype(np.float32), scores[order].astype(np.float32))

    def close(self) -> None:
        """Nothing to release."""


def open_detector(
    spec: object = "default",
    backend: str = "auto",
    threads: int | None = None,
    score_threshold: float | None = None,
) -> PersonDetector | None:
    """A detector from what a user gives.

    ``"default"`` (or None): the embedded BlazePose detector; ``"none"``: no detector (returns
    None); a ``.onnx`` path: :class:`OnnxDetector` (layout recognised from its outputs); an
    object with ``__call__``: wrapped as is (a :class:`PersonDetector` passes through).
    ``backend`` is one of the ONNX Runtime backend names of ``hmrt.runtime.backends``.
    """
    if spec is None or (isinstance(spec, str) and spec == "default"):
        from hmrt.runtime.detection.blazepose import BlazePoseDetector

        return BlazePoseDetector(backend=backend, threads=threads, score_threshold=score_threshold)
    if isinstance(spec, str) and spec == "none":
        return None
    if isinstance(spec, (str, os.PathLike)):
        path = Path(spec)
        if path.suffix.lower() != ".onnx":
            raise InputError(
                f"{path}: a detector must be an .onnx file (YOLOv8/YOLO11, RTMDet or YOLOX "
                "export), 'default' or 'none'"
            )
        from hmrt.runtime.detection.onnx_detector import OnnxDetector

        return OnnxDetector(path, backend=backend, threads=threads, score_threshold=score_threshold)
    if isinstance(spec, PersonDetector):
        return spec
    if callable(spec):
        return CallableDetector(spec)
    raise InputError(
        f"detector must be 'default', 'none', an .onnx path or a callable, got {type(spec).__name__}"
    )
