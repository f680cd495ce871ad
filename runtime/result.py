"""The per-person output of :class:`hmrt.runtime.Reconstructor`: a dataclass of numpy arrays.

Coordinates follow docs/DEVELOPING.md and ``hmrt.runtime.camera``: 3D in metres in the camera
frame of the full image (+X right, +Y down, +Z forward) with the full-image translation
already added, 2D in full-image pixels (continuous coordinates, pixel centres at +0.5).
The optional ``pose_joints`` mix the two: x, y in full-image pixels, z in root-relative metres.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

ARRAY_FIELDS = (
    "vertices",
    "joints3d",
    "joints2d",
    "rotmats",
    "betas",
    "translation",
    "cam_crop",
    "bbox",
    "box",
    "intrinsics",
)


@dataclass
class Result:
    """One person in one frame.

    Attributes:
        vertices: ``(V, 3)`` mesh vertices, camera frame, metres (translation added).
        joints3d: ``(24, 3)`` SMPL joints, camera frame, metres (translation added).
        joints2d: ``(24, 2)`` the model's 2D joints mapped to full-image pixels.
        rotmats: ``(24, 3, 3)`` SMPL pose (joint 0 = global orientation) or None.
        betas: ``(10,)`` shape coefficients or None.
        translation: ``(3,)`` camera-frame position of the root joint (CLIFF-style).
        cam_crop: ``(3,)`` the model's weak-perspective crop camera ``(s, tx, ty)``.
        bbox: ``(4,)`` the square crop used, as ``(x0, y0, x1, y1)`` image pixels.
        box: ``(3,)`` the same crop as ``(cx, cy, side)`` (``hmrt.runtime.camera`` boxes).
        intrinsics: ``(3, 3)`` the full-image camera matrix used for the translation.
        pose_joints: ``(P, 3)`` the joints of the model's own pose network (HEMlets: 18), or
            None for models without one: x, y in full-image pixels (mapped from the crop like
            ``joints2d``), z in metres relative to the root joint's depth (as the model gives
            it; no translation added). Not smoothed: the model's estimate for this frame.
        pose_joint_set: the joint set of ``pose_joints`` (``hemlets18``), "" without them.
        pose_joint_names: the names of the ``pose_joints`` joints, in order (from the model's
            metadata; empty without them).
        confidence: tracker confidence in [0, 1] that the crop still follows one person
            (geometry of the predicted joints: inside the crop, plausible size, no jump); never
            above ``person_score`` when no person is found (0 on an empty or black frame).
        person_found: whether a person is in the crop, from evidence: a detector's score on
            this frame or the last verified one, the tracker's geometry, the crop lying in the
            image and a plausible depth. False: nothing is drawn and the arrays are not a
            person (they are what the model returned for the crop, kept for shape).
        person_score: the evidence as a number in [0, 1] (``person_found`` is
            ``person_score >= threshold``); 1.0 only for a crop the caller pinned with a bbox.
        roi_source: where the crop came from: ``bbox``, ``detector``, ``track``, ``full``
            (whole frame, when nothing was found) or ``refine`` (a second pass around what
            the whole-frame pass found).
        timings: milliseconds per stage (``preprocess``, ``inference``, ``postprocess``,
            ``smoothing``, and ``total``).
        backend: the backend that actually ran, e.g. ``onnxruntime[CPUExecutionProvider]``.
        frame_index: running index of the frame in this Reconstructor (or the source).
        timestamp: seconds (given by the caller, else frame_index / 30).
    """

    vertices: np.ndarray
    joints3d: np.ndarray
    joints2d: np.ndarray
    rotmats: np.ndarray | None
    betas: np.ndarray | None
    translation: np.ndarray
    cam_crop: np.ndarray
    bbox: np.ndarray
    box: np.ndarray
    intrinsics: np.ndarray
    pose_joints: np.ndarray | None = None
    pose_joint_set: str = ""
    pose_joint_names: tuple[str, ...] = ()
    confidence: float = 1.0
    person_found: bool = True
    person_score: float = 1.0
    roi_source: str = "bbox"
    timings: dict[str, float] = field(default_factory=dict)
    backend: str = ""
    frame_index: int = 0
    timestamp: float = 0.0

    def to_json(self, vertices: bool = False) -> dict[str, Any]:
        """A JSON-serialisable dict (lists of floats); vertices only if asked (they are big)."""
        out: dict[str, Any] = {
            "frame": self.frame_index,
            "timestamp": round(float(self.timestamp), 6),
            "backend": self.backend,
            "confidence": round(float(self.confidence), 4),
            "person_found": bool(self.person_found),
            "person_score": round(float(self.person_score), 4),
            "roi_source": self.roi_source,
            "timings_ms": {k: round(float(v), 3) for k, v in self.timings.items()},
        }
        for name in ARRAY_FIELDS:
            if name == "vertices" and not vertices:
                continue
            value = getattr(self, name)
            out[name] = None if value is None else np.round(value.astype(np.float64), 6).tolist()
        if self.pose_joints is not None:  # only models with a pose network have them
            out["pose_joint_set"] = self.pose_joint_set
            out["pose_joints"] = np.round(self.pose_joints.astype(np.float64), 6).tolist()
        return out
