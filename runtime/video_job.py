"""One reconstruction job over a source, shared by ``hmrt run`` and ``hmrt demo``.

Wires a Reconstructor, a frame source, the threaded pipeline and the outputs: the annotated
video and per-frame ``results.npz`` / ``results.jsonl`` in the save folder (committed together
only if the whole run succeeds), and an optional window.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hmrt.runtime.annotate import Annotator, default_faces
from hmrt.runtime.errors import InputError
from hmrt.runtime.pipeline import Pipeline, PipelineReport
from hmrt.runtime.reconstructor import Reconstructor
from hmrt.runtime.sources import FrameSource
from hmrt.runtime.writers import AtomicOutputs, ResultsWriter, VideoSink

VIDEO_NAME = "annotated.mp4"
NPZ_NAME = "results.npz"
JSONL_NAME = "results.jsonl"
WINDOW = "hmrt (q to quit)"


@dataclass
class JobOutput:
    """The pipeline report and the files written (empty without a save folder)."""

    report: PipelineReport
    files: list[Path] = field(default_factory=list)


def open_window() -> None:
    """Open the preview window, or raise InputError if this machine cannot show one."""
    import cv2

    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        raise InputError(
            "--show needs a display, and none is set (DISPLAY/WAYLAND_DISPLAY); run without "
            "--show and use --save DIR to write the annotated video"
        )
    try:
        cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL)
    except cv2.error as exc:
        raise InputError(
            "--show needs OpenCV with GUI support, and this OpenCV is headless; "
            "pip install opencv-python (not -headless), or use --save DIR instead"
        ) from exc


def process_source(
    rec: Reconstructor,
    source: FrameSource,
    save: str | os.PathLike | None = None,
    show: bool = False,
    max_frames: int | None = None,
    mesh: bool = True,
    progress: bool = True,
    extra_npz: dict[str, np.ndarray] | None = None,
    independent: bool = False,
) -> JobOutput:
    """Run ``rec`` over ``source``; write outputs to ``save`` and/or show a window.

    ``independent``: frames are unrelated images (no tracking or smoothing across them).
    """
    import cv2

    shown = False
    if show:
        open_window()
        shown = True
    draw = bool(save) or show
    annotator = None
    if draw:
        faces = default_faces(rec.num_vertices) if mesh else None
        annotator = Annotator(faces)
        annotator.warmup()  # numba compile / cache load stays out of the measured FPS
    outputs = AtomicOutputs()
    writer: ResultsWriter | None = None
    video: dict[str, VideoSink | Path] = {}
    files: list[Path] = []
    try:
        if save:
            folder = Path(save)
            if folder.exists() and not folder.is_dir():
                raise InputError(f"--save {folder}: exists and is not a folder")
            files = [folder / VIDEO_NAME, folder / NPZ_NAME, folder / JSONL_NAME]
            video["path"] = outputs.path(files[0])
            writer = ResultsWriter(outputs.path(files[1]), outputs.path(files[2]), extra_npz)

        def on_result(frame, result) -> None:
            if writer is not None:
                writer.add(result)

        def render(frame, result, text):
            return annotator(frame.image, result, text)  # type: ignore[misc]

        def on_image(image: np.ndarray) -> bool:
            if save:
                sink = video.get("sink")
                if sink is None:
                    size = (image.shape[1], image.shape[0])
                    sink = VideoSink(video["path"], source.fps, size, str(files[0]))  # type: ignore[arg-type]
                    video["sink"] = sink
                sink.write(image)  # type: ignore[union-attr]
            if show:
                cv2.imshow(WINDOW, image)
                key = cv2.waitKey(1) & 0xFF
                return key not in (ord("q"), 27)
            return True

        def reconstruct(image: np.ndarray, ts: float):
            if independent:
                rec.reset(restart_index=False)
            return rec(image, timestamp=ts)

        pipeline = Pipeline(
            reconstruct,
            source,
            on_result=on_result,
            render=render if draw else None,
            on_image=on_image if draw else None,
            max_frames=max_frames,
            render_queue=32 if not source.live else 4,
            progress=progress,
            backend=rec.backend,
        )
        report = pipeline.run()
        if report.frames == 0:
            raise InputError(f"{source.name}: no frames were read; check --source")
        if writer is not None:
            writer.close()
            writer = None
        sink = video.get("sink")
        if sink is not None:
            sink.close()  # type: ignore[union-attr]
        elif save:
            raise InputError(f"{source.name}: nothing was rendered, so no video was written")
    except BaseException:
        if writer is not None:
            writer.discard()
        sink = video.get("sink")
        if sink is not None:
            sink.close()  # type: ignore[union-attr]
        outputs.abort()
        raise
    finally:
        if shown:
            cv2.destroyAllWindows()
    outputs.commit()
    return JobOutput(report, files)
