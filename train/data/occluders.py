"""Random synthetic occluders drawn over a composed scene: polygons, ellipses, textured boxes.

Occluders are placed so that they overlap the person's box (otherwise they teach nothing) and
return the mask of pixels they cover, which the generator removes from the person's visible
part/UV maps and uses for keypoint visibility.
"""

from __future__ import annotations

import cv2
import numpy as np

from hmrt.train.data.backgrounds import random_color, value_noise


def _texture(rng: np.random.Generator, h: int, w: int, photos: list[np.ndarray]) -> np.ndarray:
    """An RGB uint8 patch (h, w): a solid colour, value noise or a photo crop."""
    kind = rng.integers(3) if photos else rng.integers(2)
    if kind == 0:
        return np.broadcast_to((random_color(rng) * 255).astype(np.uint8), (h, w, 3))
    if kind == 1:
        n = value_noise(rng, h, w, octaves=3, base=int(rng.integers(2, 6)))[..., None]
        a, b = random_color(rng), random_color(rng)
        return ((a * (1 - n) + b * n) * 255).astype(np.uint8)
    photo = photos[int(rng.integers(len(photos)))]
    ph, pw = photo.shape[:2]
    y0, x0 = int(rng.integers(0, max(ph - 32, 1))), int(rng.integers(0, max(pw - 32, 1)))
    patch = photo[y0 : y0 + max(32, ph // 3), x0 : x0 + max(32, pw // 3)]
    return cv2.resize(patch, (w, h), interpolation=cv2.INTER_LINEAR)


def draw_occluders(
    image: np.ndarray,
    rng: np.random.Generator,
    bbox: np.ndarray,
    count: int,
    max_fraction: float = 0.35,
    photos: list[np.ndarray] | None = None,
) -> np.ndarray:
    """Draw ``count`` occluders over ``image`` (RGB uint8, modified in place) near ``bbox``.

    Each occluder's size is up to ``max_fraction`` of the box's larger side; its centre lies in
    the box. Returns the union of occluded pixels as a bool mask (H, W).
    """
    h, w = image.shape[:2]
    occ = np.zeros((h, w), bool)
    x0, y0, x1, y1 = (float(v) for v in bbox)
    side = max(x1 - x0, y1 - y0, 8.0)
    for _ in range(count):
        cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
        size = side * rng.uniform(0.08, max_fraction)
        mask = np.zeros((h, w), np.uint8)
        kind = rng.integers(3)
        if kind == 0:  # convex-ish polygon: random radii at sorted angles
            n = int(rng.integers(3, 9))
            ang = np.sort(rng.uniform(0, 2 * np.pi, n))
            rad = size * rng.uniform(0.3, 0.6, n)
            pts = np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], 1) - 0.5
            cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
        elif kind == 1:
            axes = (int(size * rng.uniform(0.2, 0.5)) + 1, int(size * rng.uniform(0.2, 0.5)) + 1)
            cv2.ellipse(mask, (int(cx), int(cy)), axes, rng.uniform(0, 180), 0, 360, 1, -1)
        else:  # rotated rectangle (a bar, a sign, a box)
            rect = (
                (cx, cy),
                (size * rng.uniform(0.2, 1.0), size * rng.uniform(0.1, 0.6)),
                rng.uniform(0, 180),
            )
            cv2.fillPoly(mask, [np.round(cv2.boxPoints(rect) - 0.5).astype(np.int32)], 1)
        ys, xs = np.nonzero(mask)
        if ys.size == 0:
            continue
        top, left = ys.min(), xs.min()
        tex = _texture(rng, ys.max() - top + 1, xs.max() - left + 1, photos or [])
        image[ys, xs] = tex[ys - top, xs - left]
        occ |= mask.astype(bool)
    return occ
