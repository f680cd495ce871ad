"""``Reconstructor``: a model file in, a 3D person per BGR frame out. The runtime's public API.

    from hmrt.runtime import Reconstructor
    rec = Reconstructor("danet_edge.onnx", smoothing="default")
    result = rec(frame)            # BGR uint8 (H, W, 3); optional bbox=(x0, y0, x1, y1)
    result.vertices, result.joints3d, result.translation, result.backend

Per frame: choose the crop (given bbox, detector, or the ROI tracker following the previous
frame's joints), crop and normalise (:mod:`preprocess`), run the backend, map the crop camera
to the full image (``hmrt.runtime.camera``: CLIFF-style translation for the frame's
intrinsics), then smooth (:mod:`smoothing`). Each stage is timed into ``Result.timings``.
A model with the optional ``pose_joints`` output (a pose network's own joints, e.g. HEMlets)
gets them in ``Result.pose_joints``: x, y mapped from the crop to full-image pixels like
``joints2d``, z (root-relative metres) as the model gives it, not smoothed.

Whether a person is there (``Result.person_found``, ``person_score``) comes from evidence,
never a constant: the person detector's score (the embedded BlazePose detector unless another
one, or ``detector="none"``, is given), taken on acquisition and re-checked every
``detect_every`` frames while tracking, times the tracker's geometry confidence, and gated by
the crop lying mostly inside the image, a plausible camera distance and a crop that is not
blank. A frame without a person gives ``person_found=False``, draws nothing and makes the
tracker re-acquire. Without a detector the evidence is the geometry alone (weak: say so).

Intrinsics: ``(fx, fy, cx, cy)`` or a 3x3 matrix for a calibrated camera; by default hmrt
assumes focal = image diagonal and the principal point at the centre (``camera.
default_intrinsics``: about 53 degrees diagonal field of view, CLIFF's default).

Thread safety: a Reconstructor keeps per-video state (the track and the smoothing filters),
so give each thread (each video stream) its own Reconstructor; they may load the same model
file. Calls on one instance from several threads are serialised by an internal lock (safe,
but not parallel). :meth:`reconstruct_batch` is stateless but takes the same lock.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence

import numpy as np

from hmrt.runtime import camera
from hmrt.runtime.backends import open_backend
from hmrt.runtime.errors import HmrtError, InputError, ModelLoadError
from hmrt.runtime.intrinsics import parse_intrinsics
from hmrt.runtime.preprocess import Preprocessor, check_frame, full_frame_box
from hmrt.runtime.result import Result
from hmrt.runtime.roi_tracker import Detector, RoiDecision, RoiTracker, inside_fraction
from hmrt.runtime.smoothing import OneEuroParams, Smoother

DEFAULT_DETECT_EVERY = 5
"""With a detector, it re-checks the tracked person every this many frames (module doc)."""
DEPTH_RANGE_M = (0.3, 25.0)
"""Camera distances (metres) a tracked person may have; outside it the track is dropped."""
MIN_CROP_STD = 4.0 / 255.0
"""Below this pixel standard deviation (0..1 units) a crop is blank: no person can be in it."""


def crop_spread(frame: np.ndarray, box: np.ndarray, samples: int = 48) -> float:
    """Standard deviation (0..1 units) of the frame's pixels inside the crop ``box``, on a
    ``samples``-point grid per side: near 0 means a blank crop (black, white, a flat wall),
    where no person can be. Padding outside the frame is not counted."""
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = camera.box_to_xyxy(np.asarray(box, dtype=np.float64))
    x0, x1 = max(int(x0), 0), min(int(np.ceil(x1)), w)
    y0, y1 = max(int(y0), 0), min(int(np.ceil(y1)), h)
    if x1 <= x0 or y1 <= y0:
        return 0.0
    sx, sy = max((x1 - x0) // samples, 1), max((y1 - y0) // samples, 1)
    return float(frame[y0:y1:sy, x0:x1:sx].std()) / 255.0


class ClosedError(HmrtError):
    """A Reconstructor used after :meth:`Reconstructor.close`."""


class Reconstructor:
    """Runs an hmrt model (``.onnx`` or ``.engine``) on BGR frames; returns :class:`Result`.

    Args:
        path: model file; self-describing through its metadata (ONNX) or sidecar (engine).
        backend: ``auto``, ``tensorrt``, ``onnxruntime``, ``onnxruntime-cpu``,
            ``onnxruntime-cuda`` or ``onnxruntime-trt`` (see ``hmrt.runtime.backends``).
        intrinsics: full-image camera; None = default from each frame's size.
        smoothing: None / ``"none"`` (off), ``"light"``, ``"default"``, ``"heavy"``, or a dict
            of :class:`~hmrt.runtime.smoothing.OneEuroParams` per channel.
        threads: ONNX Runtime intra-op threads (None: its default).
        detector: who finds people: ``"default"`` (the embedded BlazePose detector, also for
            None), ``"none"`` (no detector: whole-frame search, geometry-only evidence), an
            ``.onnx`` detector export, a :class:`~hmrt.runtime.detection.PersonDetector`, or a
            callable ``frame -> (K, 4|5) boxes``.
        detect_every: re-run the detector every N frames while tracking, to re-check that
            the person is still there (default :data:`DEFAULT_DETECT_EVERY` with a detector).
        detector_backend: ONNX Runtime backend of the detector (default: the model's, or
            ``onnxruntime`` for a TensorRT engine).
        person_threshold: detector score a track needs to count as a person. 0.6, above the
            detector's own 0.5: among the photos that ship with scikit-image the embedded
            detector's only false positive (a retina photo) scores 0.51, its weakest person
            (the cameraman) 0.62 (docs/BENCHMARKS.md, "Person detector").
        bbox_scale: crop side / max(w, h) of a given or detected box.
        track_expand: crop side / extent of the previous frame's joints.
        min_confidence: tracker confidence below which the person is re-acquired.
        refine_acquisition: when a frame had to be searched whole (first frame, after a
            loss), run the model a second time on a crop around what it found (only on
            those frames: the small whole-frame view alone is inaccurate).
        fps: frame rate assumed for smoothing when calls pass no ``timestamp``.
        cuda, cuda_graph, device: TensorRT options (CUDA binding, graph replay, GPU index).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        backend: str = "auto",
        intrinsics: object = None,
        smoothing: str | dict[str, OneEuroParams] | None = None,
        threads: int | None = None,
        detector: Detector | str | os.PathLike | None = "default",
        detect_every: int | None = None,
        detector_backend: str | None = None,
        person_threshold: float = 0.6,
        bbox_scale: float = 1.2,
        track_expand: float = 1.5,
        min_confidence: float = 0.5,
        refine_acquisition: bool = True,
        fps: float = 30.0,
        cuda: str = "auto",
        cuda_graph: bool = False,
        device: int = 0,
    ):
        self._backend = None
        if path is None or not isinstance(path, (str, os.PathLike)):
            raise ModelLoadError(
                f"Reconstructor needs a model path (.onnx or .engine), got {path!r}; export "
                "one with `hmrt export`"
            )
        self.K = parse_intrinsics(intrinsics)
        self._smoothing = "none" if smoothing is None else smoothing
        try:
            self.fps = float(fps)
        except (TypeError, ValueError):
            self.fps = float("nan")
        if not (np.isfinite(self.fps) and self.fps > 0):
            raise InputError(f"fps must be a positive number of frames per second, got {fps!r}")
        if not 0.0 <= float(person_threshold) <= 1.0:
            raise InputError(f"person_threshold must be in [0, 1], got {person_threshold!r}")
        self.person_threshold = float(person_threshold)
        self.smoother = Smoother(self._smoothing, fps=self.fps)  # validate before loading
        self._backend = open_backend(
            path, backend, threads=threads, cuda=cuda, cuda_graph=cuda_graph, device=device
        )
        self.info = self._backend.info
        # What ran stays readable after close() (reports are written after the run).
        self._backend_name = self._backend.name
        self._backend_notes = list(self._backend.notes)
        self._num_vertices = self._backend.num_vertices
        self.pre = Preprocessor(self.info.res, self.info.mean, self.info.std)
        self.bbox_scale = float(bbox_scale)
        try:
            self.detector = self._open_detector(detector, detector_backend, backend, threads)
            if self.detector is not None and detect_every is None:
                detect_every = DEFAULT_DETECT_EVERY
            self.tracker = RoiTracker(
                expand=track_expand,
                bbox_scale=bbox_scale,
                min_confidence=min_confidence,
                detector=self.detector,
                detect_every=detect_every,
            )
        except BaseException:
            self.close()
            raise
        self.refine_acquisition = bool(refine_acquisition)
        self._lock = threading.Lock()
        self._frame_index = 0
        self._lost = True
        self._input = np.empty((1, 3, self.info.res, self.info.res), np.float32)

    @staticmethod
    def _open_detector(detector, detector_backend, backend, threads):
        from hmrt.runtime.detection import open_detector

        if detector_backend is None:
            detector_backend = backend if backend.startswith("onnxruntime") else "onnxruntime"
        return open_detector(detector, backend=detector_backend, threads=threads)

    @property
    def backend(self) -> str:
        """What actually runs, e.g. ``onnxruntime[CPUExecutionProvider]``."""
        return self._backend_name

    @property
    def detector_name(self) -> str:
        """The person detector that runs (``none`` without one)."""
        det = getattr(self, "detector", None)
        return "none" if det is None else str(getattr(det, "name", type(det).__name__))

    def _live(self):
        if self._backend is None:
            raise ClosedError(
                "this Reconstructor is closed; create a new one (or do not call close() "
                "before the last frame)"
            )
        return self._backend

    @property
    def frame_index(self) -> int:
        """Index of the frame the next call processes (0 after construction or ``reset``)."""
        return self._frame_index

    @property
    def num_vertices(self) -> int | None:
        """V of the model's ``vertices`` output (None if the file leaves it dynamic)."""
        return self._num_vertices

    @property
    def backend_notes(self) -> list[str]:
        """Why faster backends were skipped, and other load-time remarks."""
        return list(self._backend_notes)

    def reset(self, restart_index: bool = True) -> None:
        """Forget the track and the smoothing history (call at a scene cut / new video).

        ``restart_index=False`` keeps counting frames (unrelated images of one folder).
        """
        with self._lock:
            self.tracker.reset()
            self.smoother.reset()
            self._lost = True
            if restart_index:
                self._frame_index = 0

    def close(self) -> None:
        """Release the backend (GPU buffers, ORT session) and the detector; safe twice."""
        backend, self._backend = self._backend, None
        if backend is not None:
            backend.close()
        det = getattr(self, "detector", None)
        if det is not None and hasattr(det, "close"):
            det.close()

    def __enter__(self) -> Reconstructor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def intrinsics_for(self, width: int, height: int) -> np.ndarray:
        """The K used for a frame of this size (given, or the default for the size)."""
        return self.K if self.K is not None else camera.default_intrinsics(width, height)

    # -- single person, with tracking and smoothing ---------------------------------------
    def __call__(
        self,
        frame: np.ndarray,
        bbox: Sequence[float] | np.ndarray | None = None,
        timestamp: float | None = None,
    ) -> Result:
        """Reconstruct the person in ``frame`` (BGR uint8 ``(H, W, 3)``).

        ``bbox`` ``(x0, y0, x1, y1)`` pins the crop for this frame; without it the tracker
        (or detector) picks it. ``timestamp`` (seconds) drives smoothing; default:
        ``frame_index / fps``.
        """
        with self._lock:
            return self._track_frame(frame, bbox, timestamp)

    def _track_frame(self, frame, bbox, timestamp) -> Result:
        self._live()
        clock = {"detection": 0.0, "preprocess": 0.0, "inference": 0.0, "postprocess": 0.0}
        t_start = time.perf_counter()
        frame = check_frame(frame)
        if bbox is not None:
            decision = RoiDecision(self._box_from_bbox(bbox), "bbox", 1.0)
        else:
            decision = self.tracker.next_box(frame)
        t_det = time.perf_counter()
        clock["detection"] = t_det - t_start
        res, confidence = self._one_pass(frame, decision, bbox is None, clock, t_det)
        if (
            bbox is None
            and decision.source == "full"
            and self.refine_acquisition
            and confidence >= self.tracker.min_confidence
        ):
            # A whole-frame crop sees the person small: crop again around what it found.
            decision = RoiDecision(self.tracker.next_box(frame).box, "refine")
            res, confidence = self._one_pass(frame, decision, True, clock, time.perf_counter())
        t3 = time.perf_counter()
        score, found = self._person_evidence(frame, decision, res, confidence)
        if not found and bbox is None and self.tracker.tracking:
            self.tracker.drop(confidence)  # re-acquire on the next frame
        if self._lost or not found:
            # A fresh acquisition may be another place or person: do not glide from the old.
            self.smoother.reset()
        self._lost = not found
        index = self._frame_index
        self._frame_index += 1
        ts = float(timestamp) if timestamp is not None else index / self.fps
        if found:
            sm = self.smoother(
                res["joints3d"], res["vertices"], res["translation"], res["joints2d"],
                res["rotmats"], res["betas"], timestamp=ts,
            )  # fmt: skip
        else:
            sm = res
        t4 = time.perf_counter()
        timings = {k: v * 1e3 for k, v in clock.items()}
        timings["smoothing"] = (t4 - t3) * 1e3
        timings["total"] = (t4 - t_start) * 1e3
        return self._result(sm, res, decision, confidence, timings, index, ts, score, found)

    def _person_evidence(
        self, frame: np.ndarray, decision: RoiDecision, res: dict, geometry: float
    ) -> tuple[float, bool]:
        """``(person_score, person_found)`` for one crop (module doc: what counts)."""
        if decision.source == "none":
            return 0.0, False
        if decision.det_score is not None:
            det = decision.det_score
        elif self.tracker.evidence is not None:
            det = self.tracker.evidence  # the last detection of this track
        else:
            det = 1.0  # no detector: the geometry is all the evidence there is
        h, w = frame.shape[:2]
        inside = inside_fraction(decision.box, w, h)
        z = float(res["translation"][2])
        depth_ok = bool(np.isfinite(z) and DEPTH_RANGE_M[0] <= z <= DEPTH_RANGE_M[1])
        textured = crop_spread(frame, decision.box) >= MIN_CROP_STD
        geometry = 1.0 if decision.source == "bbox" else float(geometry)
        score = det * geometry * min(1.0, 2.0 * inside) * float(depth_ok) * float(textured)
        found = (
            det >= self.person_threshold
            and geometry >= self.tracker.min_confidence
            and inside >= 0.5
            and depth_ok
            and textured
        )
        return float(score), bool(found)

    def _one_pass(self, frame, decision: RoiDecision, track: bool, clock: dict, t0: float):
        """Crop, infer, map back and (``track``) score one crop; adds to ``clock`` (s)."""
        self.pre(frame, decision.box, self._input[0])
        t1 = time.perf_counter()
        outs = self._live().infer(self._input)
        t2 = time.perf_counter()
        res = self._postprocess(outs, 0, frame.shape, decision.box)
        confidence = self.tracker.update(res["joints2d"], decision, frame.shape) if track else 1.0
        t3 = time.perf_counter()
        clock["preprocess"] += t1 - t0
        clock["inference"] += t2 - t1
        clock["postprocess"] += t3 - t2
        return res, confidence

    # -- many crops at once (no tracking, no smoothing) ----------------------------------
    def reconstruct_batch(
        self,
        frames: np.ndarray | Sequence[np.ndarray],
        bboxes: Sequence[Sequence[float] | None] | np.ndarray | None = None,
    ) -> list[Result]:
        """Reconstruct several crops in one backend call: several people in one frame
        (``frames`` = one frame, ``bboxes`` = K boxes) or one crop per frame of a list.

        A ``None`` box means the whole frame. Stateless: no tracking, no smoothing.
        """
        single = isinstance(frames, np.ndarray) and frames.ndim == 3
        if single:
            n = 1 if bboxes is None else len(bboxes)
            frame_list = [frames] * n
        else:
            frame_list = list(frames)  # type: ignore[arg-type]
        if bboxes is None:
            bboxes = [None] * len(frame_list)
        if len(bboxes) != len(frame_list):
            raise InputError(f"got {len(frame_list)} frames but {len(bboxes)} boxes")
        with self._lock:
            t0 = time.perf_counter()
            checked = [check_frame(f) for f in frame_list]
            boxes = np.stack([
                full_frame_box(f.shape[1], f.shape[0]) if b is None else self._box_from_bbox(b)
                for f, b in zip(checked, bboxes)
            ]) if checked else np.zeros((0, 3))  # fmt: skip
            images = self.pre.batch(checked, boxes)
            t1 = time.perf_counter()
            outs = self._live().infer(images) if len(images) else {}
            t2 = time.perf_counter()
            results = []
            for i, (f, box) in enumerate(zip(checked, boxes)):
                res = self._postprocess(outs, i, f.shape, box)
                results.append(res)
            t3 = time.perf_counter()
        n = max(len(results), 1)
        timings = {
            "preprocess": (t1 - t0) * 1e3 / n,
            "inference": (t2 - t1) * 1e3 / n,
            "postprocess": (t3 - t2) * 1e3 / n,
            "smoothing": 0.0,
            "total": (t3 - t0) * 1e3 / n,
        }
        out = []
        for i, (f, res, box) in enumerate(zip(checked, results, boxes)):
            decision = RoiDecision(box, "bbox", 1.0)
            score, found = self._person_evidence(f, decision, res, 1.0)
            out.append(self._result(res, res, decision, 1.0, dict(timings), i, 0.0, score, found))
        return out

    # -- shared pieces -------------------------------------------------------------------
    def _box_from_bbox(self, bbox: Sequence[float] | np.ndarray) -> np.ndarray:
        try:
            b = np.asarray(bbox, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            b = np.zeros(0)
        if b.shape != (4,) or not np.all(np.isfinite(b)) or b[2] <= b[0] or b[3] <= b[1]:
            raise InputError(f"bbox must be (x0, y0, x1, y1) with x1 > x0 and y1 > y0, got {bbox}")
        return camera.box_from_bbox(b, self.bbox_scale)

    def _postprocess(
        self, outs: dict[str, np.ndarray], i: int, shape: tuple[int, ...], box: np.ndarray
    ) -> dict[str, np.ndarray | None]:
        """Crop outputs of item ``i`` -> full-image pixels and camera translation."""
        res = self.info.res
        K = self.intrinsics_for(shape[1], shape[0])
        cam = outs["cam"][i].astype(np.float64)
        joints2d = camera.crop_to_image(outs["joints2d"][i], box, res).astype(np.float32)
        translation = camera.crop_to_full_translation(cam, box, K).astype(np.float32)
        pose_joints = None
        if "pose_joints" in outs:
            crop = outs["pose_joints"][i]
            xy = camera.crop_to_image(crop[:, :2], box, res)
            pose_joints = np.concatenate([xy, crop[:, 2:]], axis=1).astype(np.float32)
        return {
            "joints3d": outs["joints3d"][i],
            "vertices": outs["vertices"][i],
            "joints2d": joints2d,
            "translation": translation,
            "rotmats": outs["rotmats"][i] if "rotmats" in outs else None,
            "betas": outs["betas"][i] if "betas" in outs else None,
            "pose_joints": pose_joints,
            "cam": cam.astype(np.float32),
            "K": K,
        }

    def _result(
        self, sm, raw, decision, confidence, timings, index, ts, score=1.0, found=True
    ) -> Result:
        t = sm["translation"]
        return Result(
            vertices=sm["vertices"] + t,
            joints3d=sm["joints3d"] + t,
            joints2d=sm["joints2d"],
            rotmats=sm["rotmats"],
            betas=sm["betas"],
            translation=t,
            cam_crop=raw["cam"],
            bbox=camera.box_to_xyxy(decision.box).astype(np.float32),
            box=np.asarray(decision.box, dtype=np.float32),
            intrinsics=raw["K"],
            pose_joints=raw["pose_joints"],
            pose_joint_set=self.info.pose_joint_set if raw["pose_joints"] is not None else "",
            pose_joint_names=self.info.pose_joint_names if raw["pose_joints"] is not None else (),
            # no person: the crop follows nobody, so the tracker's geometry is no confidence
            confidence=float(confidence) if found else min(float(confidence), float(score)),
            person_found=bool(found),
            person_score=float(score),
            roi_source=decision.source,
            timings=timings,
            backend=self.backend,
            frame_index=index,
            timestamp=ts,
        )
