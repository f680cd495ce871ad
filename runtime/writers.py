"""Outputs of ``hmrt run`` / ``hmrt demo``: annotated video, per-frame ``.npz`` and ``.jsonl``.

All files of one run are committed together: each is written to a temporary sibling (through
``hmrt.runtime.atomic``) and renamed into place only when the whole run succeeded, so an error
or Ctrl-C mid-run leaves no partial files.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import cv2
import numpy as np

from hmrt.runtime.atomic import atomic_path
from hmrt.runtime.errors import InputError
from hmrt.runtime.result import Result


class AtomicOutputs:
    """A group of output files that appear together on :meth:`commit`, or not at all."""

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()
        self._open = True

    def path(self, dest: str | Path) -> Path:
        """A temporary path that becomes ``dest`` on commit."""
        return self._stack.enter_context(atomic_path(dest))

    def commit(self) -> None:
        """Rename every temporary file into place."""
        if self._open:
            self._open = False
            self._stack.close()

    def abort(self) -> None:
        """Delete every temporary file."""
        if self._open:
            self._open = False
            try:
                raise RuntimeError("aborted")
            except RuntimeError as exc:
                self._stack.__exit__(type(exc), exc, exc.__traceback__)

    def __enter__(self) -> AtomicOutputs:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


class ResultsWriter:
    """Collects per-frame Results; streams ``.jsonl`` and writes one ``.npz`` at close.

    npz keys (F frames with a result): ``frame`` (F,), ``timestamp`` (F,), ``confidence``
    (F,), ``vertices`` (F, V, 3), ``joints3d`` (F, 24, 3), ``joints2d`` (F, 24, 2),
    ``translation`` (F, 3), ``cam_crop`` (F, 3), ``bbox`` (F, 4), ``intrinsics`` (F, 3, 3),
    and ``rotmats`` (F, 24, 3, 3) / ``betas`` (F, 10) when the model has them. The jsonl has
    one object per frame (``Result.to_json``, without vertices).
    """

    def __init__(self, npz_path: Path, jsonl_path: Path, extra: dict | None = None):
        self.npz_path = npz_path
        self._jsonl = open(jsonl_path, "w", encoding="utf-8")  # noqa: SIM115 (closed in close)
        self._rows: dict[str, list] = {}
        self._extra = dict(extra or {})
        self.count = 0

    def add(self, result: Result) -> None:
        """Record one frame's result."""
        self._jsonl.write(json.dumps(result.to_json(), separators=(",", ":")) + "\n")
        row = {
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
        }
        for k, v in row.items():
            if v is not None:
                self._rows.setdefault(k, []).append(v)
        self.count += 1

    def close(self) -> None:
        """Finish the jsonl and write the npz (to the paths given, usually temporaries)."""
        self._jsonl.close()
        arrays = {k: np.asarray(v) for k, v in self._rows.items()}
        arrays.update({k: np.asarray(v) for k, v in self._extra.items()})
        # np.savez appends .npz to names without it; the temporary path keeps the suffix.
        with open(self.npz_path, "wb") as fh:
            np.savez_compressed(fh, **arrays)

    def discard(self) -> None:
        """Close the jsonl without writing the npz (the run failed)."""
        self._jsonl.close()


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
