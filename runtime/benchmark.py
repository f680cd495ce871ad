"""Per-stage latency of the runtime on this machine (``hmrt bench``, ``bench/bench_runtime.py``).

Frames are decoded from a real video file (the given source, or a generated 640x480 clip), then
reconstructed and optionally rendered one after another on one thread, so each stage's time
is its own and the end-to-end FPS is the honest sequential figure (``hmrt run`` overlaps the
stages on threads and is faster on multi-core machines). Warm-up frames are excluded. ``hmrt
bench`` runs one inference per frame (steady-state tracking): the extra pass that refines a
whole-frame re-acquisition is switched off so the numbers do not depend on the weights.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from hmrt.runtime.annotate import Annotator, default_faces
from hmrt.runtime.errors import InputError, SourceError
from hmrt.runtime.reconstructor import Reconstructor
from hmrt.runtime.sources import quiet_opencv
from hmrt.runtime.stats import STAGE_ORDER, percentiles


@dataclass
class BenchResult:
    """Per-stage milliseconds per frame (per crop for batches) and the end-to-end FPS."""

    backend: str
    model: str
    batch: int
    frames: int
    wall_s: float
    stage_ms: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGE_ORDER})
    total_ms: list[float] = field(default_factory=list)

    @property
    def fps(self) -> float:
        """Frames (crops) per second over the measured frames."""
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    def share(self, *stages: str) -> float:
        """Fraction of the mean end-to-end time spent in ``stages``."""
        total = float(np.mean(self.total_ms)) if self.total_ms else 0.0
        part = sum(float(np.mean(self.stage_ms[s])) for s in stages if self.stage_ms.get(s))
        return part / total if total > 0 else float("nan")

    def to_dict(self) -> dict:
        """JSON-friendly summary (percentiles, not raw samples)."""
        return {
            "backend": self.backend,
            "model": self.model,
            "batch": self.batch,
            "frames": self.frames,
            "fps": self.fps,
            "stages": {s: percentiles(v) for s, v in self.stage_ms.items() if v},
            "end_to_end": percentiles(self.total_ms),
            "pre_post_share": self.share("preprocess", "postprocess"),
        }


def synthetic_video(path: Path, frames: int = 90, width: int = 640, height: int = 480) -> Path:
    """A clip of a bright figure walking across a textured background (MJPG .avi)."""
    rng = np.random.default_rng(0)
    background = cv2.GaussianBlur(
        rng.integers(0, 90, (height, width, 3), dtype=np.uint8), (0, 0), 3
    )
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (width, height))
    if not writer.isOpened():
        raise InputError(f"OpenCV cannot write the benchmark clip {path}")
    for i in range(frames):
        frame = background.copy()
        cx = int(width * (0.3 + 0.4 * (0.5 - 0.5 * np.cos(2 * np.pi * i / frames))))
        h = int(height * 0.6)
        cv2.ellipse(
            frame, (cx, height // 2 - h // 3), (h // 12, h // 10), 0, 0, 360, (230, 220, 210), -1
        )
        cv2.rectangle(
            frame,
            (cx - h // 8, height // 2 - h // 5),
            (cx + h // 8, height // 2 + h // 6),
            (200, 200, 240),
            -1,
        )
        cv2.rectangle(
            frame,
            (cx - h // 9, height // 2 + h // 6),
            (cx + h // 9, height // 2 + h // 2),
            (180, 180, 220),
            -1,
        )
        writer.write(frame)
    writer.release()
    return path


class _LoopingVideo:
    """Decode a video file over and over; each read is timed."""

    def __init__(self, path: Path):
        self.path = path
        self._open()

    def _open(self) -> None:
        with quiet_opencv():
            self.cap = cv2.VideoCapture(str(self.path))
        if not self.cap.isOpened():
            raise SourceError(f"{self.path}: OpenCV cannot open it as a video; check --source")

    def read(self) -> tuple[np.ndarray, float]:
        for _ in range(2):
            t0 = time.perf_counter()
            ok, frame = self.cap.read()
            if ok:
                return frame, (time.perf_counter() - t0) * 1e3
            self.cap.release()
            self._open()
        raise SourceError(f"{self.path}: no frame could be decoded; check --source")

    def close(self) -> None:
        self.cap.release()


def run_benchmark(
    rec: Reconstructor,
    source: str | Path | None = None,
    frames: int = 200,
    warmup: int = 20,
    batch: int = 1,
    render: bool = False,
) -> BenchResult:
    """Time ``frames`` measured frames (after ``warmup``) through decode -> ... -> render."""
    if frames < 1 or warmup < 0 or batch < 1:
        raise InputError("--frames and --batch must be >= 1 and --warmup >= 0")
    with tempfile.TemporaryDirectory(prefix="hmrt_bench_") as tmp:
        path = Path(source) if source else synthetic_video(Path(tmp) / "bench.avi")
        if not path.is_file():
            raise SourceError(f"{path}: no such video; check --source")
        video = _LoopingVideo(path)
        annotator = Annotator(default_faces(rec.num_vertices)) if render else None
        result = BenchResult(rec.backend, rec.info.name, batch, 0, 0.0)
        try:
            for i in range(warmup + frames):
                measured = i >= warmup
                t_start = time.perf_counter()
                if batch == 1:
                    frame, decode_ms = video.read()
                    out = rec(frame)
                    timings = out.timings
                    outs = [out]
                else:
                    decoded = [video.read() for _ in range(batch)]
                    decode_ms = sum(d for _, d in decoded) / batch
                    outs = rec.reconstruct_batch([f for f, _ in decoded])
                    frame = decoded[-1][0]
                    timings = outs[0].timings
                render_ms = 0.0
                if annotator is not None:
                    t0 = time.perf_counter()
                    annotator(frame, outs[-1], "bench")
                    render_ms = (time.perf_counter() - t0) * 1e3 / batch
                elapsed = (time.perf_counter() - t_start) * 1e3 / batch
                if measured:
                    result.stage_ms["decode"].append(decode_ms)
                    for s in ("preprocess", "inference", "postprocess", "smoothing"):
                        result.stage_ms[s].append(timings.get(s, 0.0))
                    if annotator is not None:
                        result.stage_ms["render"].append(render_ms)
                    result.total_ms.append(elapsed)
                    result.wall_s += elapsed / 1e3 * batch
                    result.frames += batch
        finally:
            video.close()
    return result
