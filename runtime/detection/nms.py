"""Non-maximum suppression in numpy: greedy (YOLO, mmdet) and weighted (MediaPipe).

Boxes are ``x0, y0, x1, y1`` in any one coordinate frame. Each step of the greedy loop is one
vectorised IoU of the best remaining box against all the others, so the cost is
``O(kept * K)`` array work, not a Python loop over pairs.
"""

from __future__ import annotations

import numpy as np


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one ``(4,)`` box with ``(K, 4)`` boxes; degenerate boxes have IoU 0."""
    ix0 = np.maximum(box[0], boxes[:, 0])
    iy0 = np.maximum(box[1], boxes[:, 1])
    ix1 = np.minimum(box[2], boxes[:, 2])
    iy1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area = max(box[2] - box[0], 0) * max(box[3] - box[1], 0)
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(
        boxes[:, 3] - boxes[:, 1], 0, None
    )
    union = area + areas - inter
    # Two empty boxes have union 0: call that no overlap rather than dividing by zero.
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    iou_threshold: float = 0.45,
    max_detections: int | None = None,
) -> np.ndarray:
    """Indices of the boxes kept by greedy NMS, best score first.

    A box is suppressed when its IoU with a higher-scoring kept box is above
    ``iou_threshold`` (the torchvision / Ultralytics convention). At most ``max_detections``
    indices are returned (None: no limit). Ties in score keep the input order.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(boxes) != len(scores):
        raise ValueError(f"nms: {len(boxes)} boxes but {len(scores)} scores")
    limit = len(boxes) if max_detections is None else max(int(max_detections), 0)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size and len(keep) < limit:
        best, order = order[0], order[1:]
        keep.append(int(best))
        order = order[box_iou(boxes[best], boxes[order]) <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def weighted_nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    iou_threshold: float,
    extra: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """MediaPipe's weighted NMS: each cluster of overlapping boxes becomes one blended box.

    Repeatedly take the best remaining box; every remaining box whose IoU with it is above
    ``iou_threshold`` (itself included) joins its cluster and leaves the pool. The output box
    (and the row of ``extra``, e.g. flattened keypoints ``(K, D)``) is the score-weighted mean
    of the cluster; the output score is the best box's score. Blending steadies the box from
    frame to frame, where greedy NMS would jump between near-equal anchors.

    Returns ``(boxes (M, 4), scores (M,), extra (M, D) or None)``, best score first, in the
    input's float dtype (at least float32).
    """
    boxes = np.asarray(boxes).reshape(-1, 4)
    scores = np.asarray(scores).reshape(-1)
    if len(boxes) != len(scores):
        raise ValueError(f"weighted_nms: {len(boxes)} boxes but {len(scores)} scores")
    dtype = np.result_type(boxes.dtype, scores.dtype, np.float32)
    b = boxes.astype(np.float64)
    s = scores.astype(np.float64)
    e = None
    if extra is not None:
        extra = np.asarray(extra)
        e = extra.astype(np.float64).reshape(len(b), int(np.prod(extra.shape[1:])))
    out_b, out_s, out_e = [], [], []
    order = np.argsort(-s, kind="stable")
    while order.size:
        best = order[0]
        member = box_iou(b[best], b[order]) > iou_threshold
        member[0] = True  # a degenerate best box has IoU 0 with itself: still its own cluster
        cluster, order = order[member], order[~member]
        w = s[cluster]
        total = w.sum()
        # All-zero scores would divide by zero: fall back to the plain mean.
        w = w / total if total > 0 else np.full(len(cluster), 1.0 / len(cluster))
        out_b.append(w @ b[cluster])
        out_s.append(s[best])
        if e is not None:
            out_e.append(w @ e[cluster])
    result_b = np.asarray(out_b, dtype=dtype).reshape(-1, 4)
    result_s = np.asarray(out_s, dtype=dtype).reshape(-1)
    result_e = None
    if extra is not None:
        e_dtype = np.result_type(extra.dtype, np.float32)
        result_e = np.asarray(out_e, dtype=e_dtype).reshape(-1, *extra.shape[1:])
    return result_b, result_s, result_e
