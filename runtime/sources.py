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

MIN_SIDE = 2
"""Smallest image side the runtime takes (``preprocess.check_frame``): below it, SourceError."""
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


JPEG_SOI = b"\xff\xd8\xff"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _jpeg_complete(data: bytes) -> bool:
    """True if the JPEG in ``data`` reaches its end-of-image marker (FFD9).

    Walks the marker segments and, after each start-of-scan, the entropy-coded data up to the
    next real marker, so it finds the EOI of baseline and progressive files alike; bytes after
    the EOI (camera padding, an appended motion-photo video) are allowed.
    """
    n, i = len(data), 2
    while True:
        if i >= n or data[i] != 0xFF:
            return False
        while i < n and data[i] == 0xFF:  # fill bytes
            i += 1
        if i >= n:
            return False
        marker = data[i]
        i += 1
        if marker == 0xD9:
            return True
        if 0xD0 <= marker <= 0xD7 or marker in (0x01, 0xD8):  # no length field
            continue
        if i + 2 > n:
            return False
        end = i + int.from_bytes(data[i : i + 2], "big")
        if end > n:
            return False
        i = end
        if marker != 0xDA:
            continue
        while True:  # entropy-coded data: FF00 is a stuffed byte, FFD0-FFD7 restart markers
            i = data.find(b"\xff", i)
            if i < 0 or i + 1 >= n:
                return False
            nxt = data[i + 1]
            if nxt == 0x00 or 0xD0 <= nxt <= 0xD7:
                i += 2
            elif nxt == 0xFF:
                i += 1
            else:
                break


def _png_complete(data: bytes) -> bool:
    """True if the PNG in ``data`` holds every chunk up to and including IEND."""
    n, i = len(data), len(PNG_SIGNATURE)
    while i + 8 <= n:
        length = int.from_bytes(data[i : i + 4], "big")
        kind = data[i + 4 : i + 8]
        i += 12 + length  # length, type, data, CRC
        if i > n:
            return False
        if kind == b"IEND":
            return True
    return False


def truncation(path: Path) -> str | None:
    """Why the JPEG or PNG at ``path`` is cut short, or None (complete, or another format).

    OpenCV decodes a truncated JPEG without error (libjpeg only prints "Premature end of
    JPEG file" and greys out the missing part) and may do the same for PNG, so a half-copied
    photo would be processed as if it were real. Formats are told by their signature.
    """
    with open(path, "rb") as fh:
        data = fh.read()
    if data.startswith(JPEG_SOI) and not _jpeg_complete(data):
        return "its JPEG data ends before the end-of-image marker"
    if data.startswith(PNG_SIGNATURE) and not _png_complete(data):
        return "its PNG data ends before the IEND chunk"
    return None


class ImageSource(FrameSource):
    """One image or a folder of images (sorted by name), decoded with ``cv2.imread``.

    ``folder``: the images come from a folder (``hmrt run`` then writes one annotated picture
    per input rather than one video); default: more than one image. A truncated JPEG or PNG is
    a SourceError naming the file, not a silently grey-filled picture.
    """

    def __init__(self, paths: list[Path], name: str, folder: bool | None = None):
        self.name = name
        self._paths = paths
        self.frame_count = len(paths)
        self.folder = len(paths) > 1 if folder is None else bool(folder)

    @property
    def paths(self) -> list[Path]:
        """The image files, in processing order."""
        return list(self._paths)

    def __iter__(self) -> Iterator[Frame]:
        for index, path in enumerate(self._paths):
            t0 = time.perf_counter()
            try:
                cut = truncation(path)
            except OSError as exc:
                raise SourceError(
                    f"{path}: cannot read it ({exc.strerror}); check the file's permissions"
                ) from exc
            if cut is not None:
                raise SourceError(
                    f"{path}: the image is truncated ({cut}: the copy or download was cut "
                    "short); copy it again or remove it from the folder"
                )
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise SourceError(
                    f"{path}: OpenCV cannot decode this image (corrupt or not an image); "
                    "remove it from the folder or re-save it as PNG/JPEG"
                )
            if min(image.shape[:2]) < MIN_SIDE:
                raise SourceError(
                    f"{path}: the image is {image.shape[1]}x{image.shape[0]} pixels, below the "
                    f"{MIN_SIDE}x{MIN_SIDE} minimum; remove it or pass a photo of the person"
                )
            decode_ms = (time.perf_counter() - t0) * 1e3
            yield Frame(index, image, index / self.fps, decode_ms, path.name)


def open_source(spec: str | int) -> FrameSource:
    """Open ``spec``: a camera index (``0``), a video, an image, or a folder of images."""
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
        return CameraSource(int(spec))
    path = Path(spec)
    _check_path(path)
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise SourceError(
                f"{path}: folder has no images ({', '.join(sorted(IMAGE_SUFFIXES))}); "
                "point --source at a video, an image, a folder of images or a camera index"
            )
        return ImageSource(images, str(path), folder=True)
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder; check --source")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSource([path], str(path), folder=False)
    if path.stat().st_size == 0:
        raise SourceError(f"{path}: the file is empty; check --source")
    return VideoSource(path)


def _check_path(path: Path) -> None:
    """SourceError for what ``exists()`` cannot tell apart: a symbolic link loop, a dangling
    link, and a pipe or device such as ``/dev/stdin`` (``/dev/videoN``: use the index N)."""
    import errno
    import stat

    try:
        mode = path.stat().st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SourceError(
                f"{path}: symbolic link loop (the chain of links leads back to itself); fix the link "
                "or pass the real file to --source"
            ) from None
        if path.is_symlink():
            raise SourceError(
                f"{path}: broken symbolic link (its target {os.readlink(path)} does not exist); "
                "fix the link or pass the real file to --source"
            ) from None
        return  # missing: reported below as "no such file or folder"
    if stat.S_ISDIR(mode) or stat.S_ISREG(mode):
        return
    device = path.resolve().name
    if stat.S_ISCHR(mode) and device.startswith("video") and device[5:].isdigit():
        raise SourceError(
            f"{path} is a camera device; pass its index instead: --source {device[5:]}"
        )
    raise SourceError(
        f"{path} is not a regular file (a pipe, socket or device such as /dev/stdin); hmrt "
        "reads videos, images and folders from disk: save the stream to a file, or pass a "
        "camera index such as 0"
    )
