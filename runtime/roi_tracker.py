"""Where to crop the next frame: follow the person with their own 2D joints, no detector needed.

Single-image HMR models need a crop around the person. Without a detector, hmrt starts from
the whole frame (padded to a square), then crops each frame around the previous frame's 2D
joints, expanded (the joints lie inside the silhouette, so the box must grow to hold the head
top, hands and feet). A confidence in [0, 1] says whether that is still a person:

* **inside**: the fraction of joints that fell inside the crop they were predicted in (a
  model pushed off its person predicts joints at the crop border or outside it);
* **scale**: the joints' extent relative to the crop side must be plausible (a person fills
  roughly a third to all of a well-placed crop; a collapsed or exploded skeleton is not one);
* **jump**: the skeleton's centre must not move more than about half its own size between
  consecutive frames at normal frame rates.

The confidence is the product of the three; below ``min_confidence`` the tracker re-acquires
on the next frame: it calls the detector if one is given, else it crops the whole frame again.

A detector is a :class:`~hmrt.runtime.detection.PersonDetector` (``frame -> Detections``) or
any callable ``frame -> boxes`` returning ``(K, 4)`` ``x0, y0, x1, y1`` boxes or ``(K, 5)`` with a
score (or a ``(boxes, scores)`` tuple). It is called on the first frame, on re-acquisition, and
every ``detect_every`` frames if set; the box nearest the current track (else the
highest-scoring one) is used. When it runs and finds nobody, the decision says so (source
``none``): with a detector, an empty frame is never searched as if it held a person. Its score
is kept as the track's evidence (``evidence``) until the next detection.

The track is also dropped when its next crop would lie mostly outside the frame.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hmrt.runtime import camera
from hmrt.runtime.errors import InputError
from hmrt.runtime.preprocess import full_frame_box

Detector = Callable[[np.ndarray], object]


@dataclass
class RoiDecision:
    """The crop box for a frame and where it came from: ``track``, ``detector``, ``full``
    (whole frame, no detector), ``refine`` (second pass around a whole-frame result), ``bbox``
    (given) or ``none`` (the detector ran and found nobody; the box is the whole frame).

    ``det_score`` is the detector's score of the chosen box when the detector ran on this
    frame (0.0 for ``none``), else None."""

    box: np.ndarray
    source: str
    det_score: float | None = None


def parse_detections(raw: object) -> tuple[np.ndarray, np.ndarray]:
    """Normalise a detector's output to ``(K, 4)`` boxes and ``(K,)`` scores."""
    scores = None
    if hasattr(raw, "boxes") and hasattr(raw, "scores"):  # hmrt.runtime.detection.Detections
        raw = (raw.boxes, raw.scores)
    if isinstance(raw, tuple) and len(raw) == 2:
        raw, scores = raw
    boxes = np.asarray(raw, dtype=np.float64)
    if boxes.size == 0:
        return np.zeros((0, 4)), np.zeros(0)
    if boxes.ndim == 1:
        boxes = boxes[None]
    if boxes.ndim != 2 or boxes.shape[1] not in (4, 5):
        raise InputError(
            f"a detector must return (K, 4) or (K, 5) boxes x0, y0, x1, y1[, score], "
            f"got shape {boxes.shape}"
        )
    if boxes.shape[1] == 5:
        scores = boxes[:, 4] if scores is None else scores
        boxes = boxes[:, :4]
    scores = np.ones(len(boxes)) if scores is None else np.asarray(scores, np.float64)
    valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return boxes[valid], scores.reshape(-1)[valid]


class RoiTracker:
    """Chooses the crop box of each frame for one person and scores how well it is tracked.

    Args:
        expand: crop side / joints' extent (the joints' box is expanded to a square this
            many times larger).
        bbox_scale: crop side / max(w, h) for detector and user boxes (SPIN/DaNet: 1.2).
        min_confidence: below this the person is re-acquired on the next frame.
        detector: optional callable ``frame -> boxes`` (see the module doc).
        detect_every: also run the detector every N frames while tracking (None: only on
            the first frame and on re-acquisition).
        min_scale, max_scale: plausible range of the joints' extent / crop side.
        max_jump: largest plausible centre motion between frames, in joints' extents.
    """

    def __init__(
        self,
        expand: float = 1.5,
        bbox_scale: float = 1.2,
        min_confidence: float = 0.5,
        detector: Detector | None = None,
        detect_every: int | None = None,
        min_scale: float = 0.2,
        max_scale: float = 1.1,
        max_jump: float = 0.6,
    ):
        self.expand = float(expand)
        self.bbox_scale = float(bbox_scale)
        self.min_confidence = float(min_confidence)
        self.detector = detector
        if detect_every is not None and (int(detect_every) != detect_every or detect_every < 1):
            raise InputError(f"detect_every must be a whole number >= 1, got {detect_every!r}")
        self.detect_every = None if detect_every is None else int(detect_every)
        self.min_scale, self.max_scale, self.max_jump = min_scale, max_scale, max_jump
        self.reset()

    def reset(self) -> None:
        """Forget the track: the next frame is an acquisition."""
        self._box: np.ndarray | None = None
        self._center: np.ndarray | None = None
        self._since_detect = 0
        self.confidence = 0.0
        self.evidence: float | None = None

    @property
    def tracking(self) -> bool:
        """True while a confident track exists (the next crop follows the joints)."""
        return self._box is not None

    def next_box(self, frame: np.ndarray) -> RoiDecision:
        """The crop box ``(cx, cy, side)`` to use for ``frame``."""
        h, w = frame.shape[:2]
        due = self.detect_every is not None and self._since_detect >= self.detect_every
        if self.detector is not None and (self._box is None or due):
            self._since_detect = 1  # this frame counts: detect_every=1 means every frame
            boxes, scores = parse_detections(self.detector(frame))
            if len(boxes):
                box, score = self._pick(boxes, scores)
                self.evidence = score
                return RoiDecision(box, "detector", score)
            # Nobody there: say so rather than search the whole frame for a person.
            self.reset()
            self.evidence = 0.0
            return RoiDecision(full_frame_box(w, h), "none", 0.0)
        self._since_detect += 1
        if self._box is not None:
            return RoiDecision(self._box.copy(), "track")
        return RoiDecision(full_frame_box(w, h), "full")

    def _pick(self, boxes: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, float]:
        crops = camera.box_from_bbox(boxes, self.bbox_scale)
        if self._center is not None:
            i = int(np.argmin(np.linalg.norm(crops[:, :2] - self._center, axis=1)))
        else:
            i = int(np.argmax(scores))
        return crops[i], float(np.clip(scores[i], 0.0, 1.0))

    def update(
        self, joints2d: np.ndarray, used: RoiDecision, frame_shape: tuple[int, ...]
    ) -> float:
        """Score the joints predicted in the crop ``used`` and set the next frame's box.

        Returns the confidence in [0, 1]; below ``min_confidence`` the track is dropped. On
        an acquisition crop (whole frame, detector box) a small person is plausible, so the
        scale check only rejects a collapsed skeleton there.
        """
        used_box = used.box
        j = np.asarray(joints2d, dtype=np.float64)
        if not np.all(np.isfinite(j)):
            self.reset()
            return 0.0
        lo, hi = j.min(axis=0), j.max(axis=0)
        extent = float(max(hi[0] - lo[0], hi[1] - lo[1]))
        side = float(used_box[2])
        x0, y0, x1, y1 = camera.box_to_xyxy(used_box)
        inside = np.mean((j[:, 0] >= x0) & (j[:, 0] <= x1) & (j[:, 1] >= y0) & (j[:, 1] <= y1))
        scale = extent / max(side, 1e-6)
        min_scale = self.min_scale if used.source in ("track", "refine") else 0.02
        scale_ok = _ramp(scale, min_scale * 0.5, min_scale) * (
            1.0 - _ramp(scale, self.max_scale, self.max_scale * 1.5)
        )
        center = (lo + hi) / 2.0
        jump_ok = 1.0
        if self._center is not None and extent > 0:
            jump = float(np.linalg.norm(center - self._center)) / extent
            jump_ok = 1.0 - _ramp(jump, self.max_jump, self.max_jump * 2.0)
        confidence = float(inside * scale_ok * jump_ok)
        self.confidence = confidence
        if confidence < self.min_confidence:
            self.drop(confidence)
            return confidence
        h, w = frame_shape[:2]
        # Keep the crop from shrinking below 1/8 of the frame (a collapsed skeleton).
        new_side = max(extent * self.expand, max(h, w) / 8.0)
        box = np.array([center[0], center[1], new_side])
        if inside_fraction(box, w, h) < 0.5:
            # The skeleton walked off the frame: following it further crops only padding.
            self.drop(confidence)
            return confidence
        self._box = box
        self._center = center
        return confidence

    def drop(self, confidence: float = 0.0) -> None:
        """Lose the track (the next frame re-acquires) but remember the last confidence."""
        self.reset()
        self.confidence = confidence


def inside_fraction(box: np.ndarray, width: int, height: int) -> float:
    """Fraction of the square crop ``(cx, cy, side)`` that lies inside a ``width x height``
    frame (0 for a crop entirely outside it)."""
    x0, y0, x1, y1 = camera.box_to_xyxy(np.asarray(box, dtype=np.float64))
    iw = max(0.0, min(x1, width) - max(x0, 0.0))
    ih = max(0.0, min(y1, height) - max(y0, 0.0))
    area = max((x1 - x0) * (y1 - y0), 1e-9)
    return float(iw * ih / area)


def _ramp(x: float, lo: float, hi: float) -> float:
    """0 below ``lo``, 1 above ``hi``, linear between."""
    if hi <= lo:
        return float(x >= hi)
    return float(np.clip((x - lo) / (hi - lo), 0.0, 1.0))
