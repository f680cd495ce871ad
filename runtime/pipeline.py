"""Threaded video pipeline: capture -> inference -> render/write, with bounded queues.

Three threads, so decoding, inference and drawing overlap instead of adding up:

* **capture** decodes frames into a small queue. For a live camera a full queue drops its
  *oldest* frame (stale frames are never worth processing late); for files it waits, so every
  frame is processed.
* **inference** runs the Reconstructor and the per-result callback (e.g. the results
  writer). It hands (frame, result) to the render queue: for live sources ``put_nowait`` and
  the frame is not drawn if the renderer is behind, so rendering never delays inference; for
  files with outputs the queue applies back-pressure so every frame gets written.
* **render** (the calling thread, because GUI toolkits want the main thread) draws, writes
  the video and shows the window.

An exception in any thread stops all three and is re-raised by :meth:`Pipeline.run`.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from hmrt.runtime.result import Result
from hmrt.runtime.sources import Frame, FrameSource
from hmrt.runtime.stats import Samples

_END = object()
STAGES = ("decode", "detection", "preprocess", "inference", "postprocess", "smoothing", "render")


@dataclass
class PipelineReport:
    """What a run did: counts, wall time, per-stage milliseconds, end-to-end latency.

    The per-frame timings are :class:`~hmrt.runtime.stats.Samples` (exact count and mean, a
    bounded sample for percentiles), so a long run's report does not grow with its frames.
    """

    frames: int = 0
    capture_dropped: int = 0
    render_dropped: int = 0
    rendered: int = 0
    wall_s: float = 0.0
    stage_ms: dict[str, Samples] = field(default_factory=lambda: {s: Samples() for s in STAGES})
    latency_ms: Samples = field(default_factory=Samples)
    backend: str = ""

    @property
    def fps(self) -> float:
        """Frames reconstructed per second of wall time (end to end)."""
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0


def _put(q: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Blocking put that gives up when ``stop`` is set; True if the item went in."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False


def _put_latest(q: queue.Queue, item: object) -> int:
    """Put without blocking, dropping the oldest items to make room; returns how many."""
    dropped = 0
    while True:
        try:
            q.put_nowait(item)
            return dropped
        except queue.Full:
            try:
                q.get_nowait()
                dropped += 1
            except queue.Empty:
                pass


class Pipeline:
    """Runs ``reconstruct`` over ``source`` on three threads.

    Args:
        reconstruct: ``(frame_bgr, timestamp) -> Result`` (a Reconstructor call).
        source: frames; ``source.live`` selects drop-stale behaviour.
        on_result: called on the inference thread with each (Frame, Result).
        render: ``(Frame, Result, overlay_text) -> image`` on the render thread; None skips
            drawing entirely (no cost).
        on_image: called with each rendered image on the render thread (write, show); may
            return False to stop the run (the window's ``q`` key).
        max_frames: stop after this many frames.
        capture_queue, render_queue: queue sizes.
        progress: show a tqdm bar on stderr (only on a terminal).
        backend: name shown in the overlay text.
    """

    def __init__(
        self,
        reconstruct: Callable[[np.ndarray, float], Result],
        source: FrameSource,
        on_result: Callable[[Frame, Result], None] | None = None,
        render: Callable[[Frame, Result, str], np.ndarray] | None = None,
        on_image: Callable[[np.ndarray], bool | None] | None = None,
        max_frames: int | None = None,
        capture_queue: int = 2,
        render_queue: int = 8,
        progress: bool = True,
        backend: str = "",
    ):
        self.reconstruct = reconstruct
        self.source = source
        self.on_result = on_result
        self.render = render
        self.on_image = on_image
        self.max_frames = max_frames
        self.live = bool(source.live)
        self._frames_q: queue.Queue = queue.Queue(maxsize=max(1, capture_queue))
        self._render_q: queue.Queue = queue.Queue(maxsize=max(1, render_queue))
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self.progress = progress
        self.report = PipelineReport(backend=backend)

    def stop(self) -> None:
        """Ask all threads to finish (safe from any thread)."""
        self._stop.set()

    # -- threads -----------------------------------------------------------------------
    def _fail(self, exc: BaseException) -> None:
        """A stage thread failed: keep the error for the caller and stop every stage."""
        self._errors.append(exc)
        self._stop.set()

    def _put_end(self, q: queue.Queue) -> int:
        """Close a stage's output queue with the end marker; returns the items dropped for it
        (live sources drop the oldest rather than wait, files wait unless stopped)."""
        if self.live:
            return _put_latest(q, _END)
        _put(q, _END, self._stop)
        return 0

    def _capture(self) -> None:
        try:
            for frame in self.source:
                if self._stop.is_set():
                    break
                if self.max_frames is not None and frame.index >= self.max_frames:
                    break
                frame.captured_at = time.perf_counter()
                if self.live:
                    self.report.capture_dropped += _put_latest(self._frames_q, frame)
                elif not _put(self._frames_q, frame, self._stop):
                    break
        except BaseException as exc:
            self._fail(exc)
        finally:
            self.report.capture_dropped += self._put_end(self._frames_q)

    def _infer(self) -> None:
        done: deque[float] = deque(maxlen=30)
        stages = self.report.stage_ms
        try:
            while not self._stop.is_set():
                try:
                    frame = self._frames_q.get(timeout=0.05)
                except queue.Empty:
                    continue
                if frame is _END:
                    break
                result = self.reconstruct(frame.image, frame.timestamp)
                stages["decode"].append(frame.decode_ms)
                for s in ("preprocess", "inference", "postprocess", "smoothing"):
                    stages[s].append(result.timings.get(s, 0.0))
                self.report.frames += 1
                if self.on_result is not None:
                    self.on_result(frame, result)
                done.append(time.perf_counter())
                fps = (len(done) - 1) / (done[-1] - done[0]) if len(done) > 1 else 0.0
                item = (frame, result, fps)
                if self.live:
                    try:
                        self._render_q.put_nowait(item)
                    except queue.Full:
                        self.report.render_dropped += 1
                elif not _put(self._render_q, item, self._stop):
                    break
        except BaseException as exc:
            self._fail(exc)
        finally:
            self.report.render_dropped += self._put_end(self._render_q)

    def _render_loop(self, bar) -> None:
        while True:
            try:
                item = self._render_q.get(timeout=0.05)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            if item is _END:
                return
            frame, result, fps = item
            if self.render is not None:
                t0 = time.perf_counter()
                text = f"{result.timings.get('total', 0):5.1f} ms | {self.report.backend}"
                if fps > 0:  # no rate from one frame (a single image, a video's first)
                    text = f"{fps:5.1f} FPS | {text}"
                image = self.render(frame, result, text)
                self.report.stage_ms["render"].append((time.perf_counter() - t0) * 1e3)
                if self.on_image is not None and self.on_image(image) is False:
                    self._stop.set()
                self.report.rendered += 1
            if frame.captured_at:
                self.report.latency_ms.append((time.perf_counter() - frame.captured_at) * 1e3)
            if bar is not None:
                bar.update(1)

    def run(self) -> PipelineReport:
        """Process the source to its end (or ``max_frames``); re-raise any thread's error."""
        from tqdm import tqdm

        total = self.source.frame_count
        if self.max_frames is not None:
            total = min(total, self.max_frames) if total else self.max_frames
        bar = tqdm(total=total, unit="frame", disable=None if self.progress else True,
                   leave=False, desc="hmrt")  # fmt: skip
        threads = [
            threading.Thread(target=self._capture, name="hmrt-capture", daemon=True),
            threading.Thread(target=self._infer, name="hmrt-inference", daemon=True),
        ]
        start = time.perf_counter()
        for t in threads:
            t.start()
        try:
            self._render_loop(bar)
        except BaseException:
            self._stop.set()
            raise
        finally:
            if self._errors:
                self._stop.set()
            for t in threads:
                t.join(timeout=10.0)
            bar.close()
            self.report.wall_s = time.perf_counter() - start
            self.source.close()
        if self._errors:
            raise self._errors[0]
        return self.report
