"""The threaded pipeline: live sources drop stale frames instead of falling behind, rendering
never delays inference on live sources, files lose nothing, and thread errors surface."""

from __future__ import annotations

import time

import numpy as np
import pytest
from onnx_fixtures import blob_frame, make_blob_model

from hmrt.runtime import Reconstructor
from hmrt.runtime.errors import SourceError
from hmrt.runtime.pipeline import Pipeline
from hmrt.runtime.sources import Frame, FrameSource


class SyntheticCamera(FrameSource):
    """A live source producing frames at a fixed rate, like a camera (it never waits)."""

    live = True

    def __init__(self, frames: int, fps: float, fail_at: int | None = None):
        self.name, self.fps, self._n, self._fail = "synthetic camera", fps, frames, fail_at

    def __iter__(self):
        start = time.perf_counter()
        for i in range(self._n):
            if i == self._fail:
                raise SourceError("synthetic camera unplugged")
            delay = start + i / self.fps - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            yield Frame(i, blob_frame(160, 120, (40 + i % 80, 60), (20, 60)), i / self.fps, 0.1)


class FrameList(FrameSource):
    """A finite file-like source (not live)."""

    def __init__(self, frames: int):
        self.name, self._n, self.frame_count = "list", frames, frames

    def __iter__(self):
        for i in range(self._n):
            yield Frame(i, blob_frame(160, 120, (40 + i, 60), (20, 60)), i / 30, 0.1)


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    return Reconstructor(
        make_blob_model(tmp_path_factory.mktemp("m") / "b.onnx"), "onnxruntime-cpu", detector="none"
    )


def _slow(rec, delay):
    def reconstruct(image, ts):
        time.sleep(delay)
        return rec(image, timestamp=ts)

    return reconstruct


def test_live_source_drops_stale_frames(rec):
    seen = []
    pipe = Pipeline(_slow(rec, 0.03), SyntheticCamera(60, fps=200),
                    on_result=lambda f, r: seen.append(f.index), progress=False)  # fmt: skip
    report = pipe.run()
    assert report.capture_dropped > 10
    assert report.frames + report.capture_dropped == 60
    assert seen == sorted(seen) and seen[-1] >= 55  # always the freshest frames, no backlog


def test_slow_rendering_never_delays_live_inference(rec):
    def render(frame, result, text):
        time.sleep(0.05)
        return frame.image

    pipe = Pipeline(lambda im, ts: rec(im, timestamp=ts), SyntheticCamera(40, fps=100),
                    render=render, on_image=lambda img: True, render_queue=2, progress=False)  # fmt: skip
    report = pipe.run()
    assert report.render_dropped > 0
    assert report.frames > 2 * report.rendered


def test_file_source_processes_and_renders_every_frame(rec):
    rendered = []
    pipe = Pipeline(_slow(rec, 0.002), FrameList(30), render=lambda f, r, t: f.image,
                    on_image=lambda img: rendered.append(img.shape) or True,
                    render_queue=2, progress=False)  # fmt: skip
    report = pipe.run()
    assert report.frames == 30 and report.rendered == 30 and len(rendered) == 30
    assert report.capture_dropped == 0 and report.render_dropped == 0
    assert len(report.stage_ms["inference"]) == 30 and len(report.latency_ms) == 30


def test_errors_in_threads_surface_and_stop_the_run(rec):
    with pytest.raises(SourceError, match="unplugged"):
        Pipeline(lambda im, ts: rec(im, timestamp=ts), SyntheticCamera(50, 500, fail_at=10),
                 progress=False).run()  # fmt: skip

    def boom(image, ts):
        raise RuntimeError("inference failed")

    with pytest.raises(RuntimeError, match="inference failed"):
        Pipeline(boom, FrameList(10), progress=False).run()


def test_on_image_false_stops_early(rec):
    pipe = Pipeline(lambda im, ts: rec(im, timestamp=ts), FrameList(200),
                    render=lambda f, r, t: np.zeros((2, 2, 3), np.uint8),
                    on_image=lambda img: False, progress=False)  # fmt: skip
    report = pipe.run()
    assert report.rendered >= 1 and report.frames < 200
