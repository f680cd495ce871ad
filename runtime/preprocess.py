"""Frame -> model input: square crop with padding, resize, BGR->RGB and normalisation.

One ``cv2.warpAffine`` does the crop, the padding outside the frame (black) and the resize
together; the normalisation ``(rgb / 255 - mean) / std`` is folded into one multiply-add per
channel written straight into the NCHW input buffer. Both stay well under a millisecond at
224x224 (``bench/bench_runtime.py``).
"""

from __future__ import annotations

import cv2
import numpy as np

from hmrt.runtime import camera
from hmrt.runtime.errors import FrameError


def check_frame(frame: object) -> np.ndarray:
    """Return ``frame`` if it is a BGR ``uint8 (H, W, 3)`` array, else raise FrameError."""
    if not isinstance(frame, np.ndarray):
        raise FrameError(
            f"a frame must be a numpy array (BGR uint8, H x W x 3), got {type(frame).__name__}"
        )
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise FrameError(
            f"a frame must have shape (H, W, 3) in BGR order, got {frame.shape}; convert "
            "grayscale with cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR) and drop alpha with "
            "cv2.COLOR_BGRA2BGR"
        )
    if frame.dtype != np.uint8:
        raise FrameError(
            f"a frame must be uint8 (0..255), got {frame.dtype}; convert with "
            "np.clip(frame * 255, 0, 255).astype(np.uint8) for 0..1 floats"
        )
    if frame.shape[0] < 2 or frame.shape[1] < 2:
        raise FrameError(f"a frame must be at least 2x2 pixels, got {frame.shape}")
    return frame


class Preprocessor:
    """Crops frames into the model's normalised NCHW float32 input.

    ``mean``/``std`` are RGB on the 0..1 scale (the ONNX metadata ``hmrt.mean``/``hmrt.std``).
    """

    def __init__(self, res: int, mean: tuple[float, ...], std: tuple[float, ...]):
        self.res = int(res)
        std_a = np.asarray(std, dtype=np.float64)
        mean_a = np.asarray(mean, dtype=np.float64)
        # Input channel c (RGB) reads BGR plane 2 - c.
        self._gain = [float(g) for g in 1.0 / (255.0 * std_a)]
        self._offset = [float(o) for o in -mean_a / std_a]

    def crop(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray:
        """BGR ``uint8 (res, res, 3)`` crop of the square box ``(cx, cy, side)``."""
        m = camera.opencv_affine(camera.crop_matrix(box, self.res))
        return cv2.warpAffine(
            frame,
            m,
            (self.res, self.res),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0, 0, 0),
        )

    def normalise(self, crop: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """BGR uint8 crop -> RGB normalised float32 ``(3, res, res)`` (written into ``out``)."""
        if out is None:
            out = np.empty((3, self.res, self.res), np.float32)
        planes = cv2.split(crop)
        for c in range(3):
            # addWeighted(src, a, src, 0, b) = a * src + b in one pass, converted to float32.
            cv2.addWeighted(
                planes[2 - c], self._gain[c], planes[2 - c], 0.0, self._offset[c],
                dst=out[c], dtype=cv2.CV_32F,
            )  # fmt: skip
        return out

    def __call__(self, frame: np.ndarray, box: np.ndarray, out: np.ndarray | None = None):
        """Crop and normalise one person: returns the ``(3, res, res)`` input."""
        return self.normalise(self.crop(frame, box), out)

    def batch(self, frames: list[np.ndarray], boxes: np.ndarray) -> np.ndarray:
        """``(N, 3, res, res)`` input for ``N`` (frame, box) pairs (frames may repeat)."""
        out = np.empty((len(boxes), 3, self.res, self.res), np.float32)
        for i, (frame, box) in enumerate(zip(frames, boxes)):
            self(frame, box, out[i])
        return out


def full_frame_box(width: int, height: int) -> np.ndarray:
    """Square box ``(cx, cy, side)`` holding the whole frame (padded on the short side)."""
    return np.array([width / 2.0, height / 2.0, float(max(width, height))])
