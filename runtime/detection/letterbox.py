"""Letterbox: fit a frame into a detector's input without distorting it, and map boxes back.

Detectors are trained on letterboxed images: resized keeping the aspect ratio, the rest padded
with gray 114. Ultralytics centres the image (``LetterBox(center=True)``); mmdet / mmdeploy /
rtmlib (RTMDet, YOLOX) paste it at the top-left and pad bottom-right. The transform keeps the
exact per-axis scale of the resize (the resized size is rounded to whole pixels), so mapping
boxes back is the exact inverse in continuous coordinates (pixel centres at +0.5).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

PAD_VALUE = 114  # Ultralytics, mmdet and rtmlib all pad with this gray


@dataclass(frozen=True)
class LetterboxTransform:
    """``input = image * scale + pad`` per axis, for one frame.

    Attributes:
        scale_x, scale_y: input pixels per image pixel (equal up to the rounding of the size).
        pad_x, pad_y: left and top padding in input pixels.
        image_w, image_h: the original frame's size (boxes are clipped to it).
    """

    scale_x: float
    scale_y: float
    pad_x: int
    pad_y: int
    image_w: int
    image_h: int


def letterbox(
    frame: np.ndarray,
    size: tuple[int, int],
    centre: bool = True,
    pad_value: int = PAD_VALUE,
) -> tuple[np.ndarray, LetterboxTransform]:
    """Resize ``frame`` (H, W, C) into ``size = (width, height)`` keeping its aspect ratio.

    ``centre=True`` splits the padding evenly (Ultralytics, the extra pixel right/bottom);
    ``centre=False`` puts the image at the top-left (mmdet, mmdeploy, rtmlib). Returns the
    padded image (same dtype as ``frame``) and the transform for :func:`boxes_to_image`.
    """
    out_w, out_h = int(size[0]), int(size[1])
    h, w = frame.shape[:2]
    r = min(out_w / w, out_h / h)
    new_w = min(out_w, max(1, round(w * r)))
    new_h = min(out_h, max(1, round(h * r)))
    pad_x = (out_w - new_w) // 2 if centre else 0
    pad_y = (out_h - new_h) // 2 if centre else 0
    if (new_w, new_h) != (w, h):
        frame = cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    if (new_w, new_h) == (out_w, out_h):
        image = np.ascontiguousarray(frame)
    else:
        image = np.full((out_h, out_w, *frame.shape[2:]), pad_value, dtype=frame.dtype)
        image[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = frame
    transform = LetterboxTransform(new_w / w, new_h / h, pad_x, pad_y, w, h)
    return image, transform


def boxes_to_image(boxes: np.ndarray, transform: LetterboxTransform) -> np.ndarray:
    """Map ``(K, 4)`` ``x0, y0, x1, y1`` boxes from input pixels to the original frame,
    clipped to it (float32). Boxes that fall in the padding collapse to zero size."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x = (b[:, 0::2] - transform.pad_x) / transform.scale_x
    y = (b[:, 1::2] - transform.pad_y) / transform.scale_y
    out = np.empty_like(b)
    out[:, 0::2] = np.clip(x, 0.0, transform.image_w)
    out[:, 1::2] = np.clip(y, 0.0, transform.image_h)
    return out.astype(np.float32)


def boxes_to_input(boxes: np.ndarray, transform: LetterboxTransform) -> np.ndarray:
    """The forward map of :func:`boxes_to_image` (image pixels -> input pixels), unclipped."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    out = np.empty_like(b)
    out[:, 0::2] = b[:, 0::2] * transform.scale_x + transform.pad_x
    out[:, 1::2] = b[:, 1::2] * transform.scale_y + transform.pad_y
    return out
