"""Standard person-detector exports, recognised from their graph and run on ONNX Runtime.

Layouts (one image input ``[1, 3, H, W]``; boxes come out in letterboxed input pixels):

* ``yolov8``: ``yolo export format=onnx`` of YOLOv8 / YOLO11: input ``images``, one output
  ``output0 [1, 4+C, A]``; rows ``cx, cy, w, h``, then C class scores already through a
  sigmoid, no objectness (Ultralytics ``engine/exporter.py``, output names; the example
  ``examples/YOLOv8-ONNXRuntime/main.py``, decoding). Each anchor takes its best class (as
  Ultralytics' NMS with ``multi_label=False``); NMS is done here.
* ``yolo-end2end``: NMS-free Ultralytics exports (YOLO26's default, or ``nms=True``):
  ``output0 [1, N, 6]`` rows ``x0, y0, x1, y1, score, class``
  (docs.ultralytics.com/guides/end2end-detection).
* ``mmdet``: mmdeploy's ``end2end.onnx``, as rtmlib ships RTMDet and YOLOX: input ``input``,
  outputs ``dets [1, N, 5]`` (``x0, y0, x1, y1, score``) and ``labels [1, N]`` (class index)
  (mmdeploy ``configs/_base_/onnx_config.py`` and ``configs/mmdet/_base_/base_static.py``).
  Already suppressed; NMS again is harmless.

Preprocessing is not in the graph; it is each family's convention:

* ``yolov8``: BGR -> RGB, ``/ 255``, letterbox centred, pad 114 (Ultralytics ``LetterBox``
  and the example above).
* ``rtmdet``: BGR kept, ``(x - mean) / std`` with mean ``(103.53, 116.28, 123.675)`` and std
  ``(57.375, 57.12, 58.395)`` in BGR order, letterbox at the top-left, pad 114 (rtmlib
  ``rtmlib/tools/object_detection/rtmdet.py``; mmdet's RTMDet configs, ``bgr_to_rgb=False``).
* ``yolox``: BGR kept, raw 0..255, letterbox at the top-left, pad 114 (rtmlib ``yolox.py``).

The ``mmdet`` layout cannot tell RTMDet from YOLOX, so ``preprocess="auto"`` decides by:
(1) mmdeploy's SDK ``pipeline.json`` beside the file (rtmlib's ``onnx_sdk`` zips carry one):
its ``Normalize`` transform (mean, std, to_rgb), raw pixels when it has none; (2) else
``rtmdet`` or ``yolox`` in the file or folder name; (3) else a ModelLoadError asking for one
of them or ``preprocess=``. Ultralytics layouts always use ``yolov8``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from hmrt.runtime.detection.base import Detections
from hmrt.runtime.detection.graph_session import GraphSession, TensorInfo
from hmrt.runtime.detection.letterbox import boxes_to_image, letterbox
from hmrt.runtime.detection.nms import nms
from hmrt.runtime.errors import InputError, ModelLoadError
from hmrt.runtime.preprocess import check_frame


@dataclass(frozen=True)
class Preprocess:
    """How a detector wants its input: ``(pixel - mean) / std`` in the model's channel order
    (``rgb``: RGB, else BGR) on the 0..255 scale, letterboxed centred or at the top-left."""

    name: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    rgb: bool
    centre: bool


PREPROCESS = {
    "yolov8": Preprocess("yolov8", (0.0, 0.0, 0.0), (255.0, 255.0, 255.0), True, True),
    "rtmdet": Preprocess(
        "rtmdet", (103.53, 116.28, 123.675), (57.375, 57.12, 58.395), False, False
    ),
    "yolox": Preprocess("yolox", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), False, False),
}
DEFAULT_SCORE = {"yolov8": 0.25, "yolo-end2end": 0.25, "mmdet": 0.3}
DEFAULT_SIZE = 640  # when the input's height/width are dynamic and nothing says otherwise
MIN_SIDE = 1.0  # pixels: a clipped box thinner than this is no person
SUPPORTED = (
    "YOLOv8/YOLO11 `yolo export format=onnx` (one output [1, 4+C, anchors]); "
    "Ultralytics NMS-free / YOLO26 (output0 [1, N, 6]); mmdeploy/rtmlib end-to-end RTMDet "
    "or YOLOX (outputs dets [1, N, 5] and labels [1, N]); all with one image input "
    "[1, 3, H, W]. Raw YOLOv5/YOLOX heads [1, anchors, 5+C] are not supported: export them "
    "with NMS (mmdeploy end2end)"
)


def recognise(inputs: list[TensorInfo], outputs: list[TensorInfo], meta: dict) -> str | None:
    """The layout (``yolov8``, ``yolo-end2end``, ``mmdet``) of a graph, or None."""
    if len(inputs) != 1 or len(inputs[0].shape) != 4 or inputs[0].shape[1] not in (3, None):
        return None
    if inputs[0].dtype not in (np.float32, np.float16):
        return None
    by_name = {o.name: o for o in outputs}
    if "dets" in by_name and "labels" in by_name:
        dets, labels = by_name["dets"], by_name["labels"]
        if len(dets.shape) == 3 and dets.shape[2] in (5, None) and len(labels.shape) == 2:
            return "mmdet"
        return None
    if len(outputs) != 1 or len(outputs[0].shape) != 3:
        return None
    _, rows, cols = outputs[0].shape
    ultralytics = outputs[0].name == "output0" or meta.get("author") == "Ultralytics"
    if ultralytics and cols == 6:  # a [1, 4+C, A] head never has only 6 anchors
        return "yolo-end2end"
    if rows is not None and rows >= 5 and (cols is None or cols > rows):
        return "yolov8"
    return None


def _sdk_preprocess(path: Path) -> Preprocess | None:
    """Normalisation from mmdeploy's SDK ``pipeline.json`` next to ``path``, if there is one."""
    file = path.parent / "pipeline.json"
    if not file.is_file():
        return None
    try:
        tasks = json.loads(file.read_text())["pipeline"]["tasks"]
        transforms = [t for task in tasks for t in task.get("transforms") or []]
        if not transforms:
            return None
        norm = next((t for t in transforms if t.get("type") == "Normalize"), None)
        name = _name_hint(path) or "mmdet"
        if norm is None:
            return Preprocess(name, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), False, False)
        m0, m1, m2 = (float(v) for v in norm["mean"])
        s0, s1, s2 = (float(v) for v in norm["std"])
        return Preprocess(name, (m0, m1, m2), (s0, s1, s2), bool(norm.get("to_rgb")), False)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # not the SDK file hmrt knows: fall back to the name


def _name_hint(path: Path) -> str | None:
    for text in (path.stem.lower(), path.parent.name.lower()):
        for family in ("rtmdet", "yolox"):
            if family in text:
                return family
    return None


def _resolve_preprocess(preprocess: str | Preprocess, layout: str, path: Path) -> Preprocess:
    if isinstance(preprocess, Preprocess):
        return preprocess
    if preprocess != "auto":
        if preprocess not in PREPROCESS:
            raise InputError(
                f"unknown detector preprocess {preprocess!r}; choose auto, {', '.join(PREPROCESS)}"
            )
        return PREPROCESS[preprocess]
    if layout != "mmdet":
        return PREPROCESS["yolov8"]
    found = _sdk_preprocess(path)
    if found is None and (hint := _name_hint(path)) is not None:
        found = PREPROCESS[hint]
    if found is None:
        raise ModelLoadError(
            f"{path}: an end-to-end dets/labels detector, but nothing says whether it is "
            "RTMDet (mean/std normalised) or YOLOX (raw pixels); keep mmdeploy's pipeline.json "
            "beside it, put 'rtmdet' or 'yolox' in its file name, or pass preprocess="
        )
    return found


def _input_size(inp: TensorInfo, meta: dict, notes: list[str]) -> tuple[int, int]:
    """``(width, height)`` of the input; dynamic dims use Ultralytics' ``imgsz`` or 640."""
    h, w = inp.shape[2], inp.shape[3]
    if h is not None and w is not None:
        return w, h
    sizes = [int(v) for v in re.findall(r"\d+", meta.get("imgsz", ""))]
    fh, fw = (sizes * 2)[:2] if sizes else (DEFAULT_SIZE, DEFAULT_SIZE)
    notes.append(f"dynamic detector input {inp}: using {w or fw}x{h or fh}")
    return w or fw, h or fh


class OnnxDetector:
    """A YOLOv8/YOLO11, Ultralytics end-to-end, RTMDet or YOLOX ``.onnx`` as a PersonDetector.

    Args:
        path: the ``.onnx`` export.
        backend: ``auto``, ``onnxruntime``, ``onnxruntime-trt``, ``-cuda`` or ``-cpu``.
        threads: ONNX Runtime intra-op threads (None: its default).
        score_threshold: keep persons scoring above this (None: 0.25 YOLO, 0.3 mmdet).
        iou_threshold: NMS IoU above which the lower-scoring box is dropped.
        person_class: the class index of "person" (0 in COCO).
        max_detections: at most this many boxes per frame.
        preprocess: ``auto`` (see the module doc), ``yolov8``, ``rtmdet``, ``yolox`` or a
            :class:`Preprocess`.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        backend: str = "auto",
        threads: int | None = None,
        score_threshold: float | None = None,
        iou_threshold: float = 0.45,
        person_class: int = 0,
        max_detections: int = 100,
        preprocess: str | Preprocess = "auto",
    ):
        self.path = Path(path)
        if person_class < 0 or max_detections < 1:
            raise InputError(
                f"person_class must be >= 0 and max_detections >= 1, got {person_class}, "
                f"{max_detections}"
            )
        self._session = GraphSession(
            self.path, backend, threads, fix="export the detector to ONNX again"
        )
        s = self._session
        self.layout = recognise(s.inputs, s.outputs, s.metadata)
        if self.layout is None:
            found = (
                f"inputs {', '.join(map(str, s.inputs))}; outputs {', '.join(map(str, s.outputs))}"
            )
            raise ModelLoadError(
                f"{self.path}: not a person-detector layout hmrt knows ({found}). "
                f"Supported: {SUPPORTED}"
            )
        self.preprocess = _resolve_preprocess(preprocess, self.layout, self.path)
        self._classes = 0
        if self.layout == "yolov8":
            # Pose exports append keypoints after the classes: Ultralytics' `names` says how many.
            rows = s.outputs[0].shape[1] - 4
            names = re.findall(r"(\d+)\s*:", s.metadata.get("names", ""))
            self._classes = min(len(names), rows) if names else rows
            if person_class >= self._classes:
                raise ModelLoadError(
                    f"{self.path}: person_class {person_class} but the detector has only "
                    f"{self._classes} classes"
                )
        threshold = DEFAULT_SCORE[self.layout] if score_threshold is None else score_threshold
        if not 0.0 <= threshold <= 1.0 or not 0.0 < iou_threshold <= 1.0:
            raise InputError(
                f"score_threshold must be in [0, 1] and iou_threshold in (0, 1], got "
                f"{threshold}, {iou_threshold}"
            )
        self.score_threshold, self.iou_threshold = float(threshold), float(iou_threshold)
        self.person_class, self.max_detections = int(person_class), int(max_detections)
        self.notes = s.notes
        self._input = s.inputs[0]
        self.input_size = _input_size(self._input, s.metadata, self.notes)
        self._outputs = ["dets", "labels"] if self.layout == "mmdet" else [s.outputs[0].name]
        kind = self.preprocess.name if self.layout == "mmdet" else self.layout
        self.name = f"{kind}[{s.name}]"
        w, h = self.input_size
        self._blob = np.empty((1, 3, h, w), np.float32)
        p = self.preprocess
        self._gain = [1.0 / float(v) for v in p.std]
        self._offset = [-float(m) / float(v) for m, v in zip(p.mean, p.std)]

    def __call__(self, frame: np.ndarray) -> Detections:
        """Persons in a BGR ``uint8 (H, W, 3)`` frame, in its pixels, best first."""
        frame = check_frame(frame)
        image, transform = letterbox(frame, self.input_size, centre=self.preprocess.centre)
        outs = self._session.run({self._input.name: self._normalise(image)}, self._outputs)
        boxes, scores = self._decode(outs)
        ok = np.isfinite(boxes).all(axis=1) & np.isfinite(scores)
        boxes, scores = boxes[ok], scores[ok]
        keep = nms(boxes, scores, self.iou_threshold, self.max_detections)
        boxes = boxes_to_image(boxes[keep], transform)
        scores = np.clip(scores[keep], 0.0, 1.0)
        ok = (boxes[:, 2] - boxes[:, 0] >= MIN_SIDE) & (boxes[:, 3] - boxes[:, 1] >= MIN_SIDE)
        return Detections(boxes[ok].astype(np.float32), scores[ok].astype(np.float32))

    def _normalise(self, image: np.ndarray) -> np.ndarray:
        planes = cv2.split(image)
        for c in range(3):
            plane = planes[2 - c] if self.preprocess.rgb else planes[c]
            # addWeighted(src, a, src, 0, b) = a * src + b in one pass, written as float32.
            cv2.addWeighted(
                plane, self._gain[c], plane, 0.0, self._offset[c],
                dst=self._blob[0, c], dtype=cv2.CV_32F,
            )  # fmt: skip
        dtype = self._input.dtype
        return self._blob if dtype == np.float32 else self._blob.astype(dtype)

    def _decode(self, outs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Person boxes ``x0, y0, x1, y1`` (input pixels) scoring above the threshold."""
        thr, person = self.score_threshold, self.person_class
        if self.layout == "yolov8":
            pred = np.asarray(outs[0][0], np.float32)  # (4 + C, A)
            cls = pred[4 : 4 + self._classes]
            cand = np.flatnonzero(cls[person] > thr)
            # An anchor counts for its best class only, as in Ultralytics' NMS.
            cand = cand[cls[:, cand].argmax(axis=0) == person]
            cx, cy, w, h = pred[:4, cand]
            boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
            return boxes, cls[person, cand]
        if self.layout == "yolo-end2end":
            rows = np.asarray(outs[0][0], np.float32).reshape(-1, 6)
            mask = (np.rint(rows[:, 5]) == person) & (rows[:, 4] > thr)
            return rows[mask, :4], rows[mask, 4]
        dets = np.asarray(outs[0][0], np.float32).reshape(-1, 5)
        labels = np.asarray(outs[1][0]).reshape(-1)
        mask = (labels == person) & (dets[:, 4] > thr)
        return dets[mask, :4], dets[mask, 4]

    def close(self) -> None:
        """Release the ONNX Runtime session."""
        self._session.close()
