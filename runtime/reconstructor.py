"""``Reconstructor``: a model file in, a 3D person per BGR frame out. The runtime's public API.

    from hmrt.runtime import Reconstructor
    rec = Reconstructor("danet_edge.onnx", smoothing="default")
    result = rec(frame)            # BGR uint8 (H, W, 3); optional bbox=(x0, y0, x1, y1)
    result.vertices, result.joints3d, result.translation, result.backend

Per frame: choose the crop (given bbox, detector, or the ROI tracker following the previous
frame's joints), crop and normalise (:mod:`preprocess`), run the backend, map the crop camera
to the full image (``hmrt.runtime.camera``: CLIFF-style translation for the frame's
intrinsics), then smooth (:mod:`smoothing`). Each stage is timed into ``Result.timings``.

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
from hmrt.runtime.errors import InputError
from hmrt.runtime.preprocess import Preprocessor, check_frame, full_frame_box
from hmrt.runtime.result import Result
from hmrt.runtime.roi_tracker import Detector, RoiDecision, RoiTracker
from hmrt.runtime.smoothing import OneEuroParams, Smoother


def parse_intrinsics(value: object) -> np.ndarray | None:
    """``None``, ``(fx, fy, cx, cy)``, ``"fx,fy,cx,cy"`` or a 3x3 matrix -> K (3, 3) or None."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = [float(v) for v in value.split(",")]
        except ValueError:
            value = None
    k = None if value is None else np.asarray(value, dtype=np.float64)
    if k is not None and k.shape == (4,):
        k = camera.intrinsics(k[0], k[1], k[2], k[3])
    if k is None or k.shape != (3, 3) or not np.all(np.isfinite(k)) or k[0, 0] <= 0:
        raise InputError(
            f"intrinsics must be fx,fy,cx,cy (pixels, positive focal) or a 3x3 matrix, "
            f"got {value!r}"
        )
    return k


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
        detector: optional callable ``frame -> (K, 4|5) boxes`` for acquisition.
        detect_every: also re-run the detector every N frames while tracking.
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
        detector: Detector | None = None,
        detect_every: int | None = None,
        bbox_scale: float = 1.2,
        track_expand: float = 1.5,
        min_confidence: float = 0.5,
        refine_acquisition: bool = True,
        fps: float = 30.0,
        cuda: str = "auto",
        cuda_graph: bool = False,
        device: int = 0,
    ):
        self.K = parse_intrinsics(intrinsics)
        self._smoothing = "none" if smoothing is None else smoothing
        self.fps = float(fps)
        self.smoother = Smoother(self._smoothing, fps=self.fps)  # validate before loading
        self._backend = open_backend(
            path, backend, threads=threads, cuda=cuda, cuda_graph=cuda_graph, device=device
        )
        self.info = self._backend.info
        self.pre = Preprocessor(self.info.res, self.info.mean, self.info.std)
        self.bbox_scale = float(bbox_scale)
        self.tracker = RoiTracker(
            expand=track_expand,
            bbox_scale=bbox_scale,
            min_confidence=min_confidence,
            detector=detector,
            detect_every=detect_every,
        )
        self.refine_acquisition = bool(refine_acquisition)
        self._lock = threading.Lock()
        self._frame_index = 0
        self._lost = True
        self._input = np.empty((1, 3, self.info.res, self.info.res), np.float32)

    @property
    def backend(self) -> str:
        """What actually runs, e.g. ``onnxruntime[CPUExecutionProvider]``."""
        return self._backend.name

    @property
    def frame_index(self) -> int:
        """Index of the frame the next call processes (0 after construction or ``reset``)."""
        return self._frame_index

    @property
    def num_vertices(self) -> int | None:
        """V of the model's ``vertices`` output (None if the file leaves it dynamic)."""
        return self._backend.num_vertices

    @property
    def backend_notes(self) -> list[str]:
        """Why faster backends were skipped, and other load-time remarks."""
        return list(self._backend.notes)

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
        """Release the backend (GPU buffers, ORT session)."""
        self._backend.close()

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
        clock = {"preprocess": 0.0, "inference": 0.0, "postprocess": 0.0}
        t_start = time.perf_counter()
        frame = check_frame(frame)
        if bbox is not None:
            decision = RoiDecision(self._box_from_bbox(bbox), "bbox")
        else:
            decision = self.tracker.next_box(frame)
        res, confidence = self._one_pass(frame, decision, bbox is None, clock, t_start)
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
        if self._lost:
            # A fresh acquisition may be another place or person: do not glide from the old.
            self.smoother.reset()
        self._lost = confidence < self.tracker.min_confidence and bbox is None
        index = self._frame_index
        self._frame_index += 1
        ts = float(timestamp) if timestamp is not None else index / self.fps
        sm = self.smoother(
            res["joints3d"], res["vertices"], res["translation"], res["joints2d"],
            res["rotmats"], res["betas"], timestamp=ts,
        )  # fmt: skip
        t4 = time.perf_counter()
        timings = {k: v * 1e3 for k, v in clock.items()}
        timings["smoothing"] = (t4 - t3) * 1e3
        timings["total"] = (t4 - t_start) * 1e3
        return self._result(sm, res, decision, confidence, timings, index, ts)

    def _one_pass(self, frame, decision: RoiDecision, track: bool, clock: dict, t0: float):
        """Crop, infer, map back and (``track``) score one crop; adds to ``clock`` (s)."""
        self.pre(frame, decision.box, self._input[0])
        t1 = time.perf_counter()
        outs = self._backend.infer(self._input)
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
            outs = self._backend.infer(images) if len(images) else {}
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
        return [
            self._result(res, res, RoiDecision(box, "bbox"), 1.0, dict(timings), i, 0.0)
            for i, (res, box) in enumerate(zip(results, boxes))
        ]

    # -- shared pieces -------------------------------------------------------------------
    def _box_from_bbox(self, bbox: Sequence[float] | np.ndarray) -> np.ndarray:
        b = np.asarray(bbox, dtype=np.float64).reshape(-1)
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
        return {
            "joints3d": outs["joints3d"][i],
            "vertices": outs["vertices"][i],
            "joints2d": joints2d,
            "translation": translation,
            "rotmats": outs["rotmats"][i] if "rotmats" in outs else None,
            "betas": outs["betas"][i] if "betas" in outs else None,
            "cam": cam.astype(np.float32),
            "K": K,
        }

    def _result(self, sm, raw, decision, confidence, timings, index, ts) -> Result:
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
            confidence=float(confidence),
            roi_source=decision.source,
            timings=timings,
            backend=self.backend,
            frame_index=index,
            timestamp=ts,
        )
