"""One reconstruction job over a source, shared by ``hmrt run`` and ``hmrt demo``.

Wires a Reconstructor, a frame source, the threaded pipeline and the outputs in the save
folder, committed together only if the whole run succeeds: the annotated video
(``annotated.mp4``) for a video or a camera, the annotated picture (``annotated.jpg`` /
``.png``, after the input's format) for a single image, or one annotated picture per input in
``annotated/`` for a folder of images (each keeps its own size; pictures carry no FPS line),
plus the per-frame ``results.npz`` / ``results.jsonl``; and an optional window.

The save folder is checked for writability before any work, created only when outputs are
opened, and removed again if the run fails and it is still empty; errors from writing (a full
disk, a read-only folder) are one line naming the user's path.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hmrt.runtime.annotate import Annotator, default_faces
from hmrt.runtime.atomic import check_writable
from hmrt.runtime.errors import InputError
from hmrt.runtime.pipeline import Pipeline, PipelineReport
from hmrt.runtime.reconstructor import Reconstructor
from hmrt.runtime.sources import FrameSource, ImageSource
from hmrt.runtime.writers import (
    AtomicOutputs,
    PictureFolderSink,
    ResultsWriter,
    VideoSink,
    picture_suffix,
    write_picture,
)

VIDEO_NAME = "annotated.mp4"
PICTURES_DIR = "annotated"
PICTURE_STEM = "annotated"
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


def check_bbox(bbox: Sequence[float] | np.ndarray | None) -> tuple[float, ...] | None:
    """``bbox`` as ``(x0, y0, x1, y1)`` floats, or InputError naming the expected form."""
    if bbox is None:
        return None
    try:
        b = np.asarray(bbox, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        b = np.zeros(0)
    if b.size != 4 or not np.all(np.isfinite(b)) or b[2] <= b[0] or b[3] <= b[1]:
        raise InputError(
            f"bbox (--bbox) must be four pixel numbers x0,y0,x1,y1 with x1 > x0 and y1 > y0, "
            f"got {bbox!r}"
        )
    return tuple(float(v) for v in b)


def output_kind(source: FrameSource) -> str:
    """``video`` (a video or camera), ``picture`` (one image) or ``pictures`` (a folder)."""
    if isinstance(source, ImageSource):
        return "pictures" if source.folder else "picture"
    return "video"


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
    bbox: Sequence[float] | np.ndarray | None = None,
    save_flag: str = "--save",
) -> JobOutput:
    """Run ``rec`` over ``source``; write outputs to ``save`` and/or show a window.

    ``independent``: frames are unrelated images (no tracking or smoothing across them).
    ``bbox``: a fixed ``(x0, y0, x1, y1)`` person box used on every frame (no search).
    ``save_flag``: the option that named ``save`` (``--save``; the demo's ``--out``), for
    the one-line errors about an unwritable folder.
    """
    import cv2

    box = check_bbox(bbox)
    folder = Path(save) if save else None
    if folder is not None:
        check_writable(folder, "dir", save_flag)  # before any work, and creates nothing
    shown = False
    if show:
        open_window()
        shown = True
    draw = folder is not None or show
    kind = output_kind(source)
    annotator = None
    if draw:
        faces = default_faces(rec.num_vertices) if mesh else None
        annotator = Annotator(faces)
        annotator.warmup()  # numba compile / cache load stays out of the measured FPS
    outputs = AtomicOutputs(flag=save_flag)
    writer: ResultsWriter | None = None
    sink: VideoSink | None = None
    state: dict[str, object] = {}  # render -> on_image hand-over (same thread), counts
    files: list[Path] = []
    try:
        if folder is not None:
            if kind == "video":
                annotated = folder / VIDEO_NAME
                video_tmp = outputs.path(annotated)
            elif kind == "picture":
                name = source.paths[0].name  # type: ignore[attr-defined]
                annotated = folder / f"{PICTURE_STEM}{picture_suffix(name)}"
                picture_tmp = outputs.path(annotated)
            else:
                annotated = folder / PICTURES_DIR
                pictures = PictureFolderSink(outputs.dir(annotated), annotated)
            files = [annotated, folder / NPZ_NAME, folder / JSONL_NAME]
            writer = ResultsWriter(outputs.path(files[1]), outputs.path(files[2]), extra_npz)
            outputs.track(writer.spool_dir, files[1])

        def on_result(frame, result) -> None:
            if writer is not None:
                writer.add(result)

        def render(frame, result, text):
            state["frame"] = frame
            if kind != "video":
                text = ""  # a picture per photo: a frame rate across photos is not its property
            return annotator(frame.image, result, text)  # type: ignore[misc]

        def on_image(image: np.ndarray) -> bool:
            nonlocal sink
            if folder is not None:
                if kind == "video":
                    if sink is None:
                        size = (image.shape[1], image.shape[0])
                        sink = VideoSink(video_tmp, source.fps, size, str(annotated))
                    sink.write(image)
                elif kind == "picture":
                    write_picture(picture_tmp, image, annotated)
                else:
                    frame = state["frame"]
                    pictures.write(image, frame.name, frame.index)  # type: ignore[attr-defined]
                state["written"] = int(state.get("written", 0)) + 1  # type: ignore[call-overload]
            if show:
                cv2.imshow(WINDOW, image)
                key = cv2.waitKey(1) & 0xFF
                return key not in (ord("q"), 27)
            return True

        def reconstruct(image: np.ndarray, ts: float):
            if independent:
                rec.reset(restart_index=False)
            if box is not None:
                return rec(image, bbox=box, timestamp=ts)
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
        if sink is not None:
            sink.close()
            sink = None
        if folder is not None and not state.get("written"):
            raise InputError(f"{source.name}: nothing was rendered, so no {kind} was written")
    except BaseException as exc:
        if writer is not None:
            writer.discard()
        if sink is not None:
            sink.close()
        outputs.abort()
        err = outputs.error_for(exc)
        if err is not None:
            raise err from exc
        raise
    finally:
        if shown:
            cv2.destroyAllWindows()
    outputs.commit()
    return JobOutput(report, files)
