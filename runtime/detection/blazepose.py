"""The embedded default person detector: MediaPipe's BlazePose detector, run as ONNX.

``assets/detector/blazepose_detector.onnx`` is MediaPipe's ``pose_detection.tflite``
(mediapipe 0.10.21, Apache-2.0; licence, provenance and conversion in
``assets/detector/README.md``), converted once by ``tools/convert_blazepose_detector.py``. It
ships with hmrt, so "no detector given" needs nothing downloaded, and runs through the same
ONNX Runtime providers as the models (CPU here; CUDA / TensorRT EP on a GPU).

The model is an SSD over 2254 anchors; each anchor predicts a *face* box, four keypoints and a
person score. The pipeline reproduces MediaPipe's graphs, whose values are cited where used:

* ``mediapipe/modules/pose_detection/pose_detection_cpu.pbtxt`` (google-ai-edge/mediapipe):
  ImageToTensorCalculator (224x224, keep_aspect_ratio, BORDER_ZERO, range [-1, 1]),
  SsdAnchorsCalculator, TensorsToDetectionsCalculator, NonMaxSuppressionCalculator (weighted,
  IoU 0.3) and DetectionLetterboxRemovalCalculator;
* ``mediapipe/calculators/tensor/image_to_tensor_converter_opencv.cc``: the letterbox is a warp
  of the (square-padded) frame onto 224x224 with bilinear sampling and a zero border;
* ``mediapipe/calculators/tflite/ssd_anchors_calculator.cc`` and
  ``mediapipe/calculators/tensor/tensors_to_detections_calculator.cc``: anchors and decoding;
* ``mediapipe/modules/pose_landmark/pose_detection_to_roi.pbtxt`` with
  ``mediapipe/calculators/util/alignment_points_to_rects_calculator.cc``: the body region is
  centred on keypoint 0 (mid-hip) with side 2 x |keypoint 1 - keypoint 0|, rotated so that
  keypoint 0 -> 1 points up, then scaled 1.25 for the landmark model.

What hmrt returns (:class:`Detections`, best first):

* ``boxes``: the axis-aligned square of side ``2 r`` around the mid-hip, ``r`` = distance to
  the full-body scale keypoint, clipped to the frame. It bounds MediaPipe's body circle whatever
  the rotation, without the landmark model's 1.25 margin (the ROI tracker adds its own
  ``bbox_scale``, 1.2, which lands near MediaPipe's crop);
* ``scores``: the sigmoid person score;
* ``keypoints``: ``(K, 4, 2)`` image pixels: mid-hip, full-body scale point, mid-shoulder,
  upper-body scale point;
* ``meta["face_boxes"]``: the raw face boxes ``(K, 4)``; ``meta["rois"]``: MediaPipe's rotated
  landmark ROI ``(K, 4)`` as ``cx, cy, side, rotation`` (pixels, radians).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np

from hmrt.runtime.detection.base import Detections
from hmrt.runtime.detection.graph_session import GraphSession
from hmrt.runtime.detection.nms import weighted_nms
from hmrt.runtime.errors import InputError, ModelLoadError
from hmrt.runtime.preprocess import check_frame

ASSET = "detector/blazepose_detector.onnx"
INPUT_SIZE = 224  # ImageToTensorCalculator output_tensor_width/height (pose_detection_cpu)

# SsdAnchorsCalculatorOptions of pose_detection_cpu.pbtxt. anchor sizes are fixed to 1
# (fixed_anchor_size: true), so only the centres matter; aspect_ratios [1.0] plus the
# default interpolated_scale_aspect_ratio 1.0 make two anchors per cell per stride entry.
ANCHOR_STRIDES = (8, 16, 32, 32, 32)
ANCHOR_OFFSET = 0.5
ANCHORS_PER_STRIDE_ENTRY = 2
NUM_ANCHORS = 2254  # TensorsToDetectionsCalculator num_boxes

# TensorsToDetectionsCalculatorOptions: num_coords 12 (box x, y, w, h then 4 keypoints x, y;
# reverse_output_order: true = x before y), x/y/w/h_scale 224, sigmoid_score, score clipping.
NUM_COORDS, NUM_KEYPOINTS, KEYPOINT_OFFSET = 12, 4, 4
COORD_SCALE = 224.0
SCORE_CLIP = 100.0
# NonMaxSuppressionCalculatorOptions: min_suppression_threshold 0.3, WEIGHTED, IoU.
NMS_IOU = 0.3
# MediaPipe Pose's min_detection_confidence default (it sets the decoder's min_score_thresh).
DEFAULT_SCORE = 0.5
# RectTransformationCalculator in pose_detection_to_roi.pbtxt (full-body version): 1.25.
ROI_SCALE = 1.25
MIN_SIDE = 1.0  # pixels: a clipped box thinner than this is no person


def ssd_anchors(
    size: int = INPUT_SIZE,
    strides: tuple[int, ...] = ANCHOR_STRIDES,
    per_entry: int = ANCHORS_PER_STRIDE_ENTRY,
) -> np.ndarray:
    """``(N, 2)`` anchor centres ``x, y`` in [0, 1], in the model's output order.

    SsdAnchorsCalculator::GenerateAnchors: consecutive equal strides are one feature map whose
    cells carry the anchors of all those layers; centres are ``(i + 0.5) / ceil(size / stride)``,
    row-major, all anchors of a cell together.
    """
    out = []
    layer = 0
    while layer < len(strides):
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            last += 1
        n = math.ceil(size / strides[layer])
        per_cell = per_entry * (last - layer)
        grid = (np.arange(n, dtype=np.float64) + ANCHOR_OFFSET) / n
        yy, xx = np.meshgrid(grid, grid, indexing="ij")
        centres = np.stack([xx.ravel(), yy.ravel()], axis=1)
        out.append(np.repeat(centres, per_cell, axis=0))
        layer = last
    return np.concatenate(out).astype(np.float32)


def letterbox_matrix(width: int, height: int, size: int = INPUT_SIZE) -> tuple[np.ndarray, float]:
    """The 2x3 warp frame -> ``size``x``size`` input and the padded square's side (pixels).

    MediaPipe (ImageToTensorCalculator, keep_aspect_ratio) pads the frame to a centred square of
    side ``max(W, H)`` and maps that square's corners onto the tensor's corners
    (image_to_tensor_converter_opencv.cc: getPerspectiveTransform on the box corners). The same
    map is applied here with ``cv2.warpAffine``; the inverse for normalised outputs is
    ``x_image = x_norm * side + (W - side) / 2`` (DetectionLetterboxRemovalCalculator).
    """
    side = float(max(width, height))
    s = size / side
    m = np.array(
        [[s, 0.0, (side - width) / 2 * s], [0.0, s, (side - height) / 2 * s]], dtype=np.float64
    )
    return m, side


def _empty() -> Detections:
    """No person, with the same fields as a non-empty BlazePose result."""
    return Detections(
        np.zeros((0, 4), np.float32),
        np.zeros(0, np.float32),
        np.zeros((0, NUM_KEYPOINTS, 2), np.float32),
        meta={"face_boxes": np.zeros((0, 4), np.float32), "rois": np.zeros((0, 4), np.float32)},
    )


class BlazePoseDetector:
    """MediaPipe's BlazePose person detector as a :class:`PersonDetector`.

    Args:
        backend: ``auto`` (TensorRT EP > CUDA > CPU), ``onnxruntime``, ``onnxruntime-trt``,
            ``onnxruntime-cuda`` or ``onnxruntime-cpu``.
        threads: ONNX Runtime intra-op threads (None: its default).
        score_threshold: keep people scoring at least this (None: 0.5, MediaPipe Pose's
            ``min_detection_confidence``).
        path: another conversion of the same model (None: the bundled asset).
        iou_threshold: weighted-NMS IoU (MediaPipe: 0.3).

    One instance reuses its input buffers: call it from one thread at a time.
    """

    def __init__(
        self,
        backend: str = "auto",
        threads: int | None = None,
        score_threshold: float | None = None,
        path: str | os.PathLike | None = None,
        iou_threshold: float = NMS_IOU,
    ):
        bundled = path is None
        if bundled:
            from hmrt.assets import asset_path

            path = asset_path(ASSET)
        self.path = Path(path)
        if not self.path.is_file():
            fix = (
                "reinstall hmrt (it ships in hmrt/assets/detector/) or give another detector"
                if bundled
                else "check the path (tools/convert_blazepose_detector.py writes this file)"
            )
            raise ModelLoadError(f"{self.path}: BlazePose detector file missing; {fix}")
        threshold = DEFAULT_SCORE if score_threshold is None else float(score_threshold)
        if not 0.0 <= threshold <= 1.0 or not 0.0 < iou_threshold <= 1.0:
            raise InputError(
                f"score_threshold must be in [0, 1] and iou_threshold in (0, 1], got "
                f"{threshold}, {iou_threshold}"
            )
        self.score_threshold, self.iou_threshold = threshold, float(iou_threshold)
        # The threshold on the logit, so the sigmoid runs only on the survivors.
        t = min(threshold, 1 - 1e-7)
        self._logit_threshold = -math.inf if t <= 0 else math.log(t / (1.0 - t))
        self._session = GraphSession(
            self.path,
            backend,
            threads,
            fix="convert it again with tools/convert_blazepose_detector.py",
        )
        s = self._session
        shapes = {o.name: o.shape for o in s.outputs}
        if (
            [i.name for i in s.inputs] != ["image"]
            or s.inputs[0].shape != (1, 3, INPUT_SIZE, INPUT_SIZE)
            or shapes.get("regressors") != (1, NUM_ANCHORS, NUM_COORDS)
            or shapes.get("classificators") != (1, NUM_ANCHORS, 1)
        ):
            raise ModelLoadError(
                f"{self.path}: not hmrt's BlazePose detector conversion (image [1, 3, 224, 224] "
                f"-> regressors [1, 2254, 12], classificators [1, 2254, 1]); got inputs "
                f"{', '.join(map(str, s.inputs))}, outputs {', '.join(map(str, s.outputs))}"
            )
        self.notes = s.notes
        self.name = f"blazepose[{s.name}]"
        self.anchors = ssd_anchors()
        self._blob = np.empty((1, 3, INPUT_SIZE, INPUT_SIZE), np.float32)
        self._warped = np.empty((INPUT_SIZE, INPUT_SIZE, 3), np.uint8)

    def preprocess(self, frame: np.ndarray) -> tuple[np.ndarray, float]:
        """BGR frame -> the model input ``(1, 3, 224, 224)`` (RGB, [-1, 1], zero = -1 border)
        and the letterbox square's side in frame pixels. The blob is reused between calls."""
        h, w = frame.shape[:2]
        m, side = letterbox_matrix(w, h)
        cv2.warpAffine(
            frame, m, (INPUT_SIZE, INPUT_SIZE), dst=self._warped, flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0),
        )  # fmt: skip
        planes = cv2.split(self._warped)
        for c in range(3):  # RGB planes from BGR; v * 2/255 - 1 in one pass each
            cv2.addWeighted(
                planes[2 - c], 2.0 / 255.0, planes[2 - c], 0.0, -1.0,
                dst=self._blob[0, c], dtype=cv2.CV_32F,
            )  # fmt: skip
        return self._blob, side

    def infer(self, blob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw outputs: regressors ``(2254, 12)`` and score logits ``(2254,)``."""
        reg, cls = self._session.run({"image": blob}, ["regressors", "classificators"])
        return reg[0], cls[0, :, 0]

    def decode(
        self, regressors: np.ndarray, logits: np.ndarray, width: int, height: int, side: float
    ) -> Detections:
        """Detections in frame pixels from the raw outputs (see the module doc)."""
        logits = np.clip(logits, -SCORE_CLIP, SCORE_CLIP)
        cand = np.flatnonzero(logits >= self._logit_threshold)
        if cand.size == 0:
            return _empty()
        raw = regressors[cand].astype(np.float64)
        anchors = self.anchors[cand].astype(np.float64)
        # tensors_to_detections DecodeBoxes: offsets / 224 * anchor size (1) + anchor centre.
        cx = raw[:, 0] / COORD_SCALE + anchors[:, 0]
        cy = raw[:, 1] / COORD_SCALE + anchors[:, 1]
        bw, bh = raw[:, 2] / COORD_SCALE, raw[:, 3] / COORD_SCALE
        faces = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
        kps = raw[:, KEYPOINT_OFFSET:NUM_COORDS].reshape(-1, NUM_KEYPOINTS, 2) / COORD_SCALE
        kps = kps + anchors[:, None, :]
        scores = 1.0 / (1.0 + np.exp(-logits[cand].astype(np.float64)))
        # ConvertToDetections drops negative / NaN sizes; keep finite keypoints too.
        ok = (bw >= 0) & (bh >= 0) & np.isfinite(faces).all(1) & np.isfinite(kps).all((1, 2))
        if not ok.any():
            return _empty()
        faces, scores, kps = weighted_nms(
            faces[ok], scores[ok], self.iou_threshold, kps[ok].reshape(-1, 2 * NUM_KEYPOINTS)
        )
        # Letterbox removal: normalised square coordinates -> frame pixels.
        off = np.array([(width - side) / 2, (height - side) / 2])
        kps = kps.reshape(-1, NUM_KEYPOINTS, 2) * side + off
        faces = faces * side + np.tile(off, 2)
        hip, scale_pt = kps[:, 0], kps[:, 1]
        radius = np.linalg.norm(scale_pt - hip, axis=1)
        boxes = np.concatenate([hip - radius[:, None], hip + radius[:, None]], axis=1)
        boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0.0, width)
        boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0.0, height)
        # AlignmentPointsRectsCalculator: rotation brings hip -> scale point to 90 degrees (up,
        # image y flipped); RectTransformation scales the 2r square by 1.25 for the landmarks.
        d = scale_pt - hip
        rotation = np.pi / 2 - np.arctan2(-d[:, 1], d[:, 0])
        rotation = rotation - 2 * np.pi * np.floor((rotation + np.pi) / (2 * np.pi))
        rois = np.stack([hip[:, 0], hip[:, 1], 2 * radius * ROI_SCALE, rotation], axis=1)
        keep = (boxes[:, 2] - boxes[:, 0] >= MIN_SIDE) & (boxes[:, 3] - boxes[:, 1] >= MIN_SIDE)
        return Detections(
            boxes[keep].astype(np.float32),
            scores[keep].astype(np.float32),
            kps[keep].astype(np.float32),
            meta={
                "face_boxes": faces[keep].astype(np.float32),
                "rois": rois[keep].astype(np.float32),
            },
        )

    def __call__(self, frame: np.ndarray) -> Detections:
        """People in a BGR ``uint8 (H, W, 3)`` frame, in its pixels, best first."""
        frame = check_frame(frame)
        h, w = frame.shape[:2]
        blob, side = self.preprocess(frame)
        reg, logits = self.infer(blob)
        return self.decode(reg, logits, w, h, side)

    def close(self) -> None:
        """Release the ONNX Runtime session."""
        self._session.close()
