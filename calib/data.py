"""Calibration crops: a folder of images, a video, or the synthetic engine, through the runtime.

Every crop goes through exactly the runtime's preprocessing (:class:`hmrt.runtime.preprocess.
Preprocessor`: one ``warpAffine`` crop + resize, BGR->RGB, ``(x/255 - mean)/std``) with the input
size and normalisation read from the ONNX metadata, so INT8 ranges are measured on the tensors
the deployed model will see.

Where the crop box comes from:

* ``synth``: the person's box from the generator, scaled 1.2x (SPIN's rule, the same box that
  ``synth-val`` and the runtime's tracker use);
* images and videos carry no boxes: the whole frame padded to a square
  (:func:`hmrt.runtime.preprocess.full_frame_box`), which is what the runtime crops when it has
  no detector and no track yet. Calibrate on footage where the person fills most of the frame,
  or on ``synth``.

Selection is deterministic: images are sorted by name and, when there are more than ``n``, a
seeded subset (kept in name order) is used; video frames are spaced evenly over the whole clip
(neighbouring frames are near duplicates); synthetic samples are indices ``0..n-1`` of a
generator seeded with :data:`CALIB_SEED`, which is not ``synth-val``'s seed, so calibration never
sees the evaluation images.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hmrt.runtime.errors import InputError
from hmrt.runtime.preprocess import Preprocessor, full_frame_box

DEFAULT_CALIB_N = 512
CALIB_SEED = 20261106
"""Seed of the synthetic calibration set (``synth-val`` uses 20261121: no overlap)."""
SYNTH_BOX_SCALE = 1.2


@dataclass(frozen=True)
class CropRequest:
    """One calibration item before preprocessing: a BGR frame and its square box (cx, cy, side)."""

    frame: np.ndarray
    box: np.ndarray
    name: str


class CalibrationSource:
    """Base class: a deterministic, finite sequence of (frame, box) items."""

    kind = "base"
    description = ""

    def __len__(self) -> int:
        raise NotImplementedError

    def __iter__(self) -> Iterator[CropRequest]:
        raise NotImplementedError


def _subset(count: int, n: int, seed: int) -> list[int]:
    """``n`` of ``range(count)``: all when ``count <= n``, else a seeded subset in order."""
    if count <= n:
        return list(range(count))
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(count, size=n, replace=False))


class ImageFolderSource(CalibrationSource):
    """Images of a folder (sorted by name; seeded subset of ``n``), whole frame each."""

    kind = "images"

    def __init__(self, folder: str | os.PathLike, n: int, seed: int = CALIB_SEED):
        from hmrt.runtime.sources import IMAGE_SUFFIXES

        self.folder = Path(folder)
        files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InputError(
                f"{self.folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in this folder; "
                "pass a folder of images, a video file or 'synth' to --data"
            )
        self.files = [files[i] for i in _subset(len(files), n, seed)]
        self.description = f"{self.folder} ({len(self.files)} of {len(files)} images)"

    def __len__(self) -> int:
        return len(self.files)

    def __iter__(self) -> Iterator[CropRequest]:
        import cv2

        for path in self.files:
            frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if frame is None:
                raise InputError(
                    f"{path}: OpenCV cannot decode this image; remove it from the calibration "
                    "folder or re-save it as PNG/JPEG"
                )
            yield CropRequest(frame, full_frame_box(frame.shape[1], frame.shape[0]), path.name)


class VideoFileSource(CalibrationSource):
    """``n`` frames spaced evenly over a video (read sequentially: no inexact seeking)."""

    kind = "video"

    def __init__(self, path: str | os.PathLike, n: int):
        import cv2

        from hmrt.runtime.sources import quiet_opencv

        self.path = Path(path)
        with quiet_opencv():
            cap = cv2.VideoCapture(str(self.path))
            ok = cap.isOpened()
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if ok else 0
            cap.release()
        if not ok:
            raise InputError(
                f"{self.path}: OpenCV cannot open it as a video; pass a folder of images, a "
                "video OpenCV can read (e.g. re-encode with ffmpeg -i IN -c:v mjpeg OUT.avi) or "
                "'synth' to --data"
            )
        self.frame_count = count
        if count > 0:
            picks = np.linspace(0, count - 1, num=min(n, count)).round().astype(int)
            self.indices = sorted({int(i) for i in picks})
        else:  # no frame count in the container: the first n frames
            self.indices = list(range(n))
        self.n = len(self.indices)
        self.description = f"{self.path} ({self.n} frames of {count or 'unknown'})"

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[CropRequest]:
        import cv2

        from hmrt.runtime.sources import quiet_opencv

        wanted = set(self.indices)
        last = max(self.indices)
        got = 0
        with quiet_opencv():
            cap = cv2.VideoCapture(str(self.path))
            try:
                index = 0
                while index <= last:
                    ok, frame = cap.read()
                    if not ok:
                        break
                    if index in wanted:
                        got += 1
                        box = full_frame_box(frame.shape[1], frame.shape[0])
                        yield CropRequest(frame, box, f"{self.path.name}#{index}")
                    index += 1
            finally:
                cap.release()
        if got == 0:
            raise InputError(f"{self.path}: no frame could be decoded; check the video file")


class SynthSource(CalibrationSource):
    """Synthetic scenes ``0..n-1`` (training distribution), cropped around the person.

    ``body``: body-model npz (None: the bundled model); it needs the DensePose/UV surface arrays.
    """

    kind = "synth"

    def __init__(self, n: int, seed: int = CALIB_SEED, body: str | os.PathLike | None = None):
        from hmrt.train.data.synth import SynthConfig, SyntheticGenerator
        from hmrt.train.data.validation import SYNTH_VAL_SEED

        if seed == SYNTH_VAL_SEED:
            raise InputError(
                f"--seed {seed} is synth-val's seed: calibrating on the evaluation set would "
                "make the precision report meaningless; pick another seed"
            )
        self.n = int(n)
        self.seed = int(seed)
        config = SynthConfig(body_path=None if body is None else str(body))
        self.generator = SyntheticGenerator(config, seed=self.seed)
        self.description = f"synth (seed {self.seed}, {self.n} scenes)"

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[CropRequest]:
        from hmrt.runtime import camera

        for index in range(self.n):
            s = self.generator.sample(index)
            frame = np.ascontiguousarray(s["image"][..., ::-1])  # generator RGB -> camera BGR
            box = camera.box_from_bbox(np.asarray(s["bbox"], np.float64), SYNTH_BOX_SCALE)
            yield CropRequest(frame, box, f"synth#{index}")


def open_calibration_source(
    spec: str | os.PathLike,
    n: int = DEFAULT_CALIB_N,
    seed: int = CALIB_SEED,
    body: str | os.PathLike | None = None,
) -> CalibrationSource:
    """``synth``, a folder of images, or a video file -> a :class:`CalibrationSource`."""
    if n < 1:
        raise InputError(f"--calib-n {n}: use at least 1 calibration sample (default 512)")
    if str(spec) == "synth":
        return SynthSource(n, seed, body)
    path = Path(spec)
    if path.is_dir():
        return ImageFolderSource(path, n, seed)
    if not path.exists():
        raise InputError(
            f"{path}: no such folder or video; --data takes a folder of images, a video file "
            "or 'synth'"
        )
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty; pass a video, an image folder or 'synth'")
    return VideoFileSource(path, n)


def preprocessor_from_onnx(path: str | os.PathLike) -> Preprocessor:
    """The runtime :class:`Preprocessor` for an hmrt ONNX file (size, mean, std from metadata)."""
    from hmrt.runtime.model_info import parse_metadata

    meta = read_metadata(path)
    info = parse_metadata(str(path), meta)
    return Preprocessor(info.res, info.mean, info.std)


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """``metadata_props`` of an ONNX file (loads the graph without its external weights)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise InputError(f"{path}: not a readable ONNX model ({type(exc).__name__})") from exc
    return {p.key: p.value for p in model.metadata_props}


def calibration_images(
    source: CalibrationSource, pre: Preprocessor, progress: bool = True
) -> np.ndarray:
    """All items of ``source`` as model inputs ``(N, 3, res, res)`` float32 (tqdm bar)."""
    from tqdm import tqdm

    out = np.empty((len(source), 3, pre.res, pre.res), np.float32)
    count = 0
    bar = tqdm(
        source,
        total=len(source),
        desc=f"calibration crops ({source.kind})",
        unit="img",
        disable=not progress,
        leave=False,
    )
    for item in bar:
        if count == len(out):
            break
        pre(item.frame, item.box, out[count])
        count += 1
    if count == 0:
        raise InputError(f"{source.description}: produced no calibration crops")
    return out[:count]
