"""Frame sources for ``hmrt run``: a video file, a folder of images, one image, or a camera.

Every failure becomes a one-line SourceError naming the source and the fix: a missing path, a
file OpenCV cannot decode, a camera index that does not open, an empty folder, and a video
that ends before the frame count in its header (truncated or corrupt), which OpenCV itself
reports only as an early end of stream.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from hmrt.runtime.errors import SourceError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


@dataclass
class Frame:
    """One decoded frame: BGR image, running index, timestamp (s), decode time (ms).

    ``captured_at`` is the ``time.perf_counter()`` when the pipeline took the frame (for the
    end-to-end latency).
    """

    index: int
    image: np.ndarray
    timestamp: float
    decode_ms: float
    name: str = ""
    captured_at: float = 0.0


@contextlib.contextmanager
def quiet_opencv() -> Iterator[None]:
    """Silence OpenCV/FFmpeg warnings while probing a source (hmrt reports errors itself)."""
    # FFmpeg reads its log level when a capture opens; honour a user's explicit setting.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is None:
        yield
        return
    previous = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        logging.setLogLevel(previous)


class FrameSource:
    """Base: iterate :class:`Frame` objects. ``live`` sources drop stale frames downstream."""

    name: str = ""
    live: bool = False
    fps: float = 30.0
    frame_count: int | None = None

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the device or file."""


class VideoSource(FrameSource):
    """A video file through OpenCV (FFmpeg), with truncation detection."""

    def __init__(self, path: Path):
        self.name = str(path)
        with quiet_opencv():
            self._cap = cv2.VideoCapture(str(path))
            ok = self._cap.isOpened()
        if not ok:
            raise SourceError(
                f"{path}: OpenCV cannot open it as a video (not a video, unsupported codec, "
                "or truncated); check the file or convert it with ffmpeg -i IN -c:v mjpeg OUT.avi"
            )
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 1.0 <= fps <= 1000.0 else 30.0
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count = count if count > 0 else None

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        while True:
            t0 = time.perf_counter()
            with quiet_opencv():
                ok, image = self._cap.read()
            if not ok:
                break
            yield Frame(index, image, index / self.fps, (time.perf_counter() - t0) * 1e3)
            index += 1
        # Container frame counts can be estimates; a few frames short is not an error.
        if self.frame_count is not None and index < self.frame_count - max(
            2, self.frame_count // 50
        ):
            raise SourceError(
                f"{self.name}: the video ended after {index} of its {self.frame_count} frames "
                "(truncated or corrupt file); re-encode or re-download it"
            )

    def close(self) -> None:
        self._cap.release()


class CameraSource(FrameSource):
    """A live camera by index (``/dev/videoN`` on Linux)."""

    live = True

    def __init__(self, index: int):
        self.name = f"camera {index}"
        with quiet_opencv():
            self._cap = cv2.VideoCapture(index)
            ok = self._cap.isOpened()
        if not ok:
            raise SourceError(
                f"camera {index} does not open (no such device, in use, or no permission); "
                "list cameras with `ls /dev/video*` or pass a video file"
            )
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 1.0 <= fps <= 240.0 else 30.0

    def __iter__(self) -> Iterator[Frame]:
        index, start = 0, time.monotonic()
        while True:
            t0 = time.perf_counter()
            ok, image = self._cap.read()
            if not ok:
                return  # unplugged or stopped: end of stream
            now = time.monotonic()
            yield Frame(index, image, now - start, (time.perf_counter() - t0) * 1e3)
            index += 1

    def close(self) -> None:
        self._cap.release()


class ImageSource(FrameSource):
    """One image or a folder of images (sorted by name), decoded with ``cv2.imread``."""

    def __init__(self, paths: list[Path], name: str):
        self.name = name
        self._paths = paths
        self.frame_count = len(paths)

    def __iter__(self) -> Iterator[Frame]:
        for index, path in enumerate(self._paths):
            t0 = time.perf_counter()
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise SourceError(
                    f"{path}: OpenCV cannot decode this image (corrupt or not an image); "
                    "remove it from the folder or re-save it as PNG/JPEG"
                )
            decode_ms = (time.perf_counter() - t0) * 1e3
            yield Frame(index, image, index / self.fps, decode_ms, path.name)


def open_source(spec: str | int) -> FrameSource:
    """Open ``spec``: a camera index (``0``), a video, an image, or a folder of images."""
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
        return CameraSource(int(spec))
    path = Path(spec)
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise SourceError(
                f"{path}: folder has no images ({', '.join(sorted(IMAGE_SUFFIXES))}); "
                "point --source at a video, an image, a folder of images or a camera index"
            )
        return ImageSource(images, str(path))
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder; check --source")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSource([path], str(path))
    if path.stat().st_size == 0:
        raise SourceError(f"{path}: the file is empty; check --source")
    return VideoSource(path)
