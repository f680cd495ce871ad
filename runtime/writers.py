"""Outputs of ``hmrt run`` / ``hmrt demo``: annotated video or pictures, per-frame ``.npz`` and
``.jsonl``.

All files of one run are committed together: each is written to a temporary sibling (through
``hmrt.runtime.atomic``) and renamed into place only when the whole run succeeded, so an error
or Ctrl-C mid-run leaves no partial files. Results are streamed to disk as they arrive (the
npz is assembled from per-key spool files at the end), so memory does not grow with the
number of frames.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

import cv2
import numpy as np

from hmrt.runtime.atomic import (
    PATH_ERRNOS,
    WRITE_ERRNOS,
    atomic_dir,
    atomic_path,
    describe_write_error,
    make_dirs,
    names_path,
    remove_new_dirs,
)
from hmrt.runtime.errors import InputError, OutputError
from hmrt.runtime.result import Result

COPY_CHUNK = 1 << 20
"""Bytes copied at a time from a spool file into the npz (bounds memory while committing)."""


class AtomicOutputs:
    """A group of output files that appear together on :meth:`commit`, or not at all.

    Folders missing on the way to an output are created when the first output needs them
    and removed again on :meth:`abort` (if still empty), so a failed run leaves no new,
    empty ``--save`` folder either. :meth:`error_for` turns an OSError from writing any of
    the temporaries into an OutputError naming the user's path.
    """

    def __init__(self, flag: str | None = None) -> None:
        self._stack = contextlib.ExitStack()
        self._open = True
        self._flag = flag
        self._created: list[Path] = []
        self._temps: dict[Path, tuple[Path, str]] = {}  # temporary -> (destination, kind)

    def _parent(self, dest: Path) -> None:
        self._created += make_dirs(dest.parent, self._flag)

    def path(self, dest: str | Path) -> Path:
        """A temporary path that becomes the file ``dest`` on commit."""
        dest = Path(dest)
        self._parent(dest)
        tmp = self._stack.enter_context(atomic_path(dest))
        self._temps[tmp] = (dest, "file")
        return tmp

    def dir(self, dest: str | Path) -> Path:
        """A temporary folder that becomes the folder ``dest`` on commit."""
        dest = Path(dest)
        self._parent(dest)
        tmp = self._stack.enter_context(atomic_dir(dest))
        self._temps[tmp] = (dest, "dir")
        return tmp

    def track(self, temporary: str | Path, dest: str | Path) -> None:
        """Report errors naming ``temporary`` (a writer's scratch file) as errors of ``dest``."""
        self._temps[Path(temporary)] = (Path(dest), "file")

    def error_for(self, exc: BaseException) -> OutputError | None:
        """The OutputError for an OSError raised while writing these outputs, else None."""
        if not isinstance(exc, OSError) or exc.errno is None or not self._temps:
            return None
        if exc.errno in WRITE_ERRNOS | PATH_ERRNOS:
            for tmp, (dest, kind) in self._temps.items():
                if names_path(exc, [tmp, dest]):
                    return describe_write_error(exc, dest, kind, None)
        if exc.errno in WRITE_ERRNOS:  # a write() names no file: blame the outputs' folder
            dests = [d for d, _ in self._temps.values()]
            parents = {d.parent for d in dests}
            if len(parents) == 1:
                return describe_write_error(exc, parents.pop(), "dir", self._flag)
            return describe_write_error(exc, dests[0], "file", None)
        return None

    def commit(self) -> None:
        """Rename every temporary file into place."""
        if self._open:
            self._open = False
            self._stack.close()

    def abort(self) -> None:
        """Delete every temporary file, and the folders created for them if left empty."""
        if self._open:
            self._open = False
            try:
                raise RuntimeError("aborted")
            except RuntimeError as exc:
                self._stack.__exit__(type(exc), exc, exc.__traceback__)
            remove_new_dirs(self._created)

    def __enter__(self) -> AtomicOutputs:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def _row_dtype(value: Any) -> np.dtype:
    """The dtype ``np.asarray([value, ...])`` gives rows like ``value`` (Python float ->
    float64, int -> int64, arrays and numpy scalars keep theirs)."""
    if isinstance(value, (np.ndarray, np.generic)):
        return value.dtype
    return np.asarray([value]).dtype


class _Spool:
    """The rows of one npz key, appended as raw C-order bytes to a scratch file.

    All rows must have the first row's shape; the dtype is promoted (and the rows written so
    far converted) if a later row needs it, as ``np.asarray`` of the list of rows would.
    """

    def __init__(self, path: Path, first: Any):
        self.path = path
        self.shape = np.shape(first)
        self.dtype = _row_dtype(first)
        self.count = 0
        self._fh: BinaryIO = open(path, "wb")  # noqa: SIM115 (closed in close)

    def add(self, key: str, value: Any) -> None:
        arr = np.asarray(value)
        if arr.shape != self.shape:
            raise ValueError(
                f"results writer: '{key}' has shape {arr.shape} in row {self.count}, but "
                f"{self.shape} in the first row; every row of a key must have the same shape"
            )
        row_dtype = _row_dtype(value)
        if row_dtype != self.dtype:
            dtype = np.result_type(self.dtype, row_dtype)
            if dtype != self.dtype:
                self._promote(dtype)
        self._fh.write(np.ascontiguousarray(arr, dtype=self.dtype).data)
        self.count += 1

    def _promote(self, dtype: np.dtype) -> None:
        """Rewrite the rows so far in ``dtype`` (rare: a key whose type widens mid-run)."""
        self._fh.close()
        tmp = self.path.with_name(self.path.name + ".promote")
        row = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        rows_per_chunk = max(1, COPY_CHUNK // max(row, 1))
        with open(self.path, "rb") as src, open(tmp, "wb") as dst:
            while chunk := src.read(rows_per_chunk * row) if row else b"":
                dst.write(np.frombuffer(chunk, self.dtype).astype(dtype).data)
        os.replace(tmp, self.path)
        self.dtype = np.dtype(dtype)
        self._fh = open(self.path, "ab")  # noqa: SIM115 (closed in close)

    def close(self) -> None:
        self._fh.close()

    def write_npy(self, zf: zipfile.ZipFile, key: str) -> None:
        """Write ``key.npy`` into ``zf`` exactly as ``np.savez`` would, reading the rows in
        chunks (never all in memory)."""
        header = {
            "descr": np.lib.format.dtype_to_descr(self.dtype),
            "fortran_order": False,
            "shape": (self.count, *self.shape),
        }
        with zf.open(key + ".npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(member, header)
            with open(self.path, "rb") as src:
                shutil.copyfileobj(src, member, COPY_CHUNK)


class ResultsWriter:
    """Streams per-frame Results to ``.jsonl`` and to scratch files; writes the ``.npz`` at
    :meth:`close`.

    npz keys (F frames with a result): ``frame`` (F,), ``timestamp`` (F,), ``confidence``
    (F,), ``vertices`` (F, V, 3), ``joints3d`` (F, 24, 3), ``joints2d`` (F, 24, 2),
    ``translation`` (F, 3), ``cam_crop`` (F, 3), ``bbox`` (F, 4), ``intrinsics`` (F, 3, 3),
    ``rotmats`` (F, 24, 3, 3) / ``betas`` (F, 10) when the model has them, and
    ``person_found`` (F,) bool / ``person_score`` (F,) when the Result has them. Dtypes are
    those of ``np.asarray`` over the rows (as the in-memory writer before it). A model with a
    pose network of its own (HEMlets) adds ``pose_joints`` (F, P, 3) (x, y full-image pixels,
    z root-relative metres), with its labels once: ``pose_joint_names`` (P,) and
    ``pose_joint_set`` (a string, e.g. ``hemlets18``). The jsonl has one object per frame
    (``Result.to_json``, without vertices).

    Memory stays flat however many frames arrive: each row goes straight to a scratch file
    (one per key, in a hidden ``.part`` folder next to the npz, removed at close/discard), and
    :meth:`close` copies them into the (compressed) npz member by member, in chunks.
    """

    def __init__(
        self,
        npz_path: str | os.PathLike,
        jsonl_path: str | os.PathLike,
        extra: dict | None = None,
    ):
        self.npz_path = Path(npz_path)
        self._extra = dict(extra or {})
        self._spools: dict[str, _Spool] = {}
        self._labels: dict[str, np.ndarray] = {}  # per-run labels of pose_joints, written once
        self.count = 0
        self.spool_dir = Path(
            tempfile.mkdtemp(prefix=f".{self.npz_path.name}.", suffix=".part",
                             dir=self.npz_path.parent)
        )  # fmt: skip
        try:
            self._jsonl = open(jsonl_path, "w", encoding="utf-8")  # noqa: SIM115 (closed in close)
        except BaseException:
            shutil.rmtree(self.spool_dir, ignore_errors=True)
            raise

    @staticmethod
    def _row(result: Result) -> dict[str, Any]:
        return {
            "frame": result.frame_index,
            "timestamp": result.timestamp,
            "confidence": result.confidence,
            "vertices": result.vertices,
            "joints3d": result.joints3d,
            "joints2d": result.joints2d,
            "translation": result.translation,
            "cam_crop": result.cam_crop,
            "bbox": result.bbox,
            "intrinsics": result.intrinsics,
            "rotmats": result.rotmats,
            "betas": result.betas,
            # Newer Results say whether a person was found; older ones lack the fields.
            "person_found": getattr(result, "person_found", None),
            "person_score": getattr(result, "person_score", None),
            "pose_joints": getattr(result, "pose_joints", None),
        }

    def add(self, result: Result) -> None:
        """Record one frame's result."""
        self._jsonl.write(json.dumps(result.to_json(), separators=(",", ":")) + "\n")
        for key, value in self._row(result).items():
            if value is None:
                continue
            spool = self._spools.get(key)
            if spool is None:
                spool = _Spool(self.spool_dir / f"{len(self._spools):02d}.bin", value)
                self._spools[key] = spool
            spool.add(key, value)
        if getattr(result, "pose_joints", None) is not None and not self._labels:
            names = tuple(getattr(result, "pose_joint_names", ()))
            if names:
                self._labels["pose_joint_names"] = np.asarray(names, dtype=str)
            self._labels["pose_joint_set"] = np.asarray(getattr(result, "pose_joint_set", ""))
        self.count += 1

    def close(self) -> None:
        """Finish the jsonl and write the npz (to the paths given, usually temporaries)."""
        try:
            self._jsonl.close()
            for spool in self._spools.values():
                spool.close()
            # np.savez_compressed's layout: ZIP_DEFLATED, zip64 members named KEY.npy.
            with zipfile.ZipFile(
                self.npz_path, mode="w", compression=zipfile.ZIP_DEFLATED, allowZip64=True
            ) as zf:
                for key, spool in self._spools.items():
                    spool.write_npy(zf, key)
                for key, value in {**self._labels, **self._extra}.items():
                    with zf.open(key + ".npy", "w", force_zip64=True) as member:
                        np.lib.format.write_array(member, np.asarray(value))
        finally:
            self._cleanup()

    def discard(self) -> None:
        """Close everything without writing the npz (the run failed)."""
        with contextlib.suppress(OSError):  # a full disk fails the flush again: ignore
            self._jsonl.close()
        self._cleanup()

    def _cleanup(self) -> None:
        for spool in self._spools.values():
            with contextlib.suppress(OSError):
                spool.close()
        shutil.rmtree(self.spool_dir, ignore_errors=True)


class VideoSink:
    """Writes BGR frames of one size to a video (MJPG ``.avi`` or mp4v ``.mp4`` by suffix)."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int], dest_name: str = ""):
        suffix = path.suffix.lower()
        fourcc = "MJPG" if suffix == ".avi" else "mp4v"
        self.size = size
        self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
        if not self._writer.isOpened():
            raise InputError(
                f"OpenCV cannot write {dest_name or path} with codec {fourcc}; use a .avi or "
                ".mp4 name, or check the folder's permissions"
            )
        self.count = 0

    def write(self, frame: np.ndarray) -> None:
        """Append one frame (resized if its size differs from the first one's)."""
        if (frame.shape[1], frame.shape[0]) != self.size:
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        self._writer.write(frame)
        self.count += 1

    def close(self) -> None:
        """Flush and close the file."""
        self._writer.release()


PICTURE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def picture_suffix(name: str | os.PathLike) -> str:
    """The suffix an annotated copy of picture ``name`` gets: its own (lower case) when OpenCV
    writes that format in colour, else ``.png`` (lossless; e.g. for grey ``.pgm`` inputs)."""
    suffix = Path(name).suffix.lower()
    if suffix in PICTURE_SUFFIXES and cv2.haveImageWriter("x" + suffix):
        return suffix
    return ".png"


def write_picture(path: Path, image: np.ndarray, dest: Path) -> None:
    """Write ``image`` to ``path`` (format from its suffix); OutputError naming ``dest`` on
    failure (OpenCV returns False instead of raising)."""
    try:
        ok = cv2.imwrite(str(path), image)
    except cv2.error as exc:
        raise OutputError(f"{dest}: OpenCV cannot write this picture format ({exc})") from exc
    if not ok:
        raise OutputError(
            f"{dest}: OpenCV could not write the picture (disk full or no permission?); "
            "check the --save folder"
        )


class PictureFolderSink:
    """Writes one annotated picture per input image into a folder, each at its own size and
    named after its input (``IMG_1.jpg`` -> ``IMG_1.jpg``; formats OpenCV cannot write in
    colour become ``.png``)."""

    def __init__(self, folder: Path, dest: Path):
        self.folder = folder
        self.dest = dest
        self.count = 0
        self._used: set[str] = set()

    def name_for(self, input_name: str, index: int) -> str:
        """A unique output name for input ``input_name`` (``frame_NNNNNN`` if unnamed)."""
        stem = Path(input_name).stem if input_name else f"frame_{index:06d}"
        suffix = picture_suffix(input_name or ".png")
        name, k = stem + suffix, 1
        while name in self._used:  # a.png and a.pgm (written as .png) both want a.png
            name, k = f"{stem}_{k}{suffix}", k + 1
        self._used.add(name)
        return name

    def write(self, image: np.ndarray, input_name: str, index: int) -> None:
        """Write the annotated picture of input ``input_name``."""
        name = self.name_for(input_name, index)
        write_picture(self.folder / name, image, self.dest / name)
        self.count += 1
