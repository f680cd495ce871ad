"""Scene backgrounds without downloads: procedural images and scikit-image's free sample photos.

Procedural backgrounds mix linear gradients, multi-octave value noise, a floor/wall split and
random shapes. Photos come from the sample images that ship inside the scikit-image wheel
(``skimage/data``); only files whose docstring in ``skimage/data/_fetchers.py`` (0.26) states
CC0 or public domain are used, and none shows a person (the astronaut and camera photos do,
and would be unlabelled people in the scene):

=========================  ===================================================================
file                       licence (as stated by scikit-image)
=========================  ===================================================================
``brick.png``              CC0 (CC0Textures "Bricks25")
``grass.png``              CC0 (DeviantArt linolafett "Grass-01")
``gravel.png``             CC0 (CC0Textures "Gravel04")
``chelsea.png``            CC0 by the photographer (Stefan van der Walt)
``coffee.png``             CC0 by the photographer (Rachel Michetti)
``clock_motion.png``       public domain, released by the photographer (Stefan van der Walt)
``hubble_deep_field.jpg``  public domain (NASA)
``rocket.jpg``             public domain (SpaceX)
=========================  ===================================================================

Photos are random crops at random scales with flips and colour jitter (grey ones get a tint).
Without scikit-image installed, only procedural backgrounds are produced.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np

PHOTO_LICENCES: dict[str, str] = {
    "brick.png": "CC0 (CC0Textures Bricks25)",
    "grass.png": "CC0 (DeviantArt linolafett Grass-01)",
    "gravel.png": "CC0 (CC0Textures Gravel04)",
    "chelsea.png": "CC0 (photographer Stefan van der Walt)",
    "coffee.png": "CC0 (photographer Rachel Michetti)",
    "clock_motion.png": "public domain (photographer Stefan van der Walt)",
    "hubble_deep_field.jpg": "public domain (NASA)",
    "rocket.jpg": "public domain (SpaceX)",
}
"""scikit-image sample file -> its licence; the only photos the generator uses."""

_MAX_SIDE = 640  # photos are stored downscaled: crops are small and memory stays ~5 MB


def skimage_data_dir() -> Path | None:
    """The ``skimage/data`` folder of the installed scikit-image, without importing it."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data"
    return path if path.is_dir() else None


def load_photos() -> list[np.ndarray]:
    """The licensed photos as RGB uint8 arrays (empty without scikit-image)."""
    folder = skimage_data_dir()
    photos = []
    if folder is None:
        return photos
    for name in PHOTO_LICENCES:
        img = cv2.imread(
            str(folder / name), cv2.IMREAD_COLOR
        )  # BGR; grey files become 3 equal planes
        if img is None:
            continue
        k = _MAX_SIDE / max(img.shape[:2])
        if k < 1:
            img = cv2.resize(img, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
        photos.append(np.ascontiguousarray(img[..., ::-1]))
    return photos


def random_colors(
    rng: np.random.Generator, n: int, sat: tuple = (0.0, 0.8), val: tuple = (0.15, 0.95)
) -> np.ndarray:
    """``n`` random RGB colours (n, 3) float32 in 0..1 from HSV ranges."""
    hsv = np.stack(
        [rng.uniform(0, 180, n), rng.uniform(*sat, n) * 255, rng.uniform(*val, n) * 255], axis=1
    )
    rgb = cv2.cvtColor(hsv.astype(np.uint8)[None], cv2.COLOR_HSV2RGB)[0]
    return rgb.astype(np.float32) / 255.0


def random_color(rng: np.random.Generator, sat: tuple = (0.0, 0.8), val: tuple = (0.15, 0.95)):
    """A random RGB colour (3,) float32 in 0..1 from HSV ranges."""
    return random_colors(rng, 1, sat, val)[0]


def value_noise(rng: np.random.Generator, h: int, w: int, octaves: int = 3, base: int = 4):
    """Smooth fractal noise in [0, 1], float32 (h, w): upsampled random grids, summed."""
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        cells = base * 2**o
        grid = rng.uniform(size=(cells, cells)).astype(np.float32)
        out += amp * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= 0.5
    out /= total
    lo, hi = float(out.min()), float(out.max())
    return (out - lo) / max(hi - lo, 1e-6)


def _gradient(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    a, b = random_color(rng), random_color(rng)
    th = rng.uniform(0, 2 * np.pi)
    xs = (np.arange(w, dtype=np.float32) / w - 0.5) * np.float32(np.cos(th))
    ys = (np.arange(h, dtype=np.float32) / h - 0.5) * np.float32(np.sin(th))
    t = np.clip(np.add.outer(ys, xs) + 0.5, 0, 1)[..., None]
    return a + (b - a) * t


def procedural_background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A random procedural scene: gradient or floor/wall, noise texture and shapes (RGB uint8)."""
    if rng.uniform() < 0.35:  # floor / wall split with a horizon
        img = np.empty((h, w, 3), np.float32)
        horizon = int(rng.uniform(0.3, 0.8) * h)
        img[:horizon] = random_color(rng, val=(0.4, 0.95))
        img[horizon:] = random_color(rng, val=(0.2, 0.8))
    else:
        img = _gradient(rng, h, w)
    noise = value_noise(rng, h, w, octaves=int(rng.integers(2, 5)), base=int(rng.integers(2, 8)))
    tint = random_color(rng)
    k = rng.uniform(0.05, 0.5)
    img = img * (1 - k) + k * noise[..., None] * tint
    canvas = np.clip(img * 255, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(0, 8))):
        color = tuple(int(c) for c in random_color(rng) * 255)
        kind = rng.integers(3)
        if kind == 0:
            p0 = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
            p1 = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
            cv2.rectangle(canvas, p0, p1, color, -1, cv2.LINE_AA)
        elif kind == 1:
            c = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
            axes = (int(rng.uniform(3, w / 3)), int(rng.uniform(3, h / 3)))
            cv2.ellipse(canvas, c, axes, rng.uniform(0, 180), 0, 360, color, -1, cv2.LINE_AA)
        else:
            p0 = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
            p1 = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
            cv2.line(canvas, p0, p1, color, int(rng.integers(1, 8)), cv2.LINE_AA)
    return canvas


def photo_background(rng: np.random.Generator, photo: np.ndarray, h: int, w: int) -> np.ndarray:
    """A random crop of ``photo`` resized to (h, w), flipped and colour-jittered (RGB uint8)."""
    ph, pw = photo.shape[:2]
    aspect = w / h
    frac = rng.uniform(0.3, 1.0)
    ch = int(max(8, min(ph, pw / aspect) * frac))
    cw = int(max(8, min(pw, ch * aspect)))
    y0 = int(rng.integers(0, ph - ch + 1))
    x0 = int(rng.integers(0, pw - cw + 1))
    crop = cv2.resize(photo[y0 : y0 + ch, x0 : x0 + cw], (w, h), interpolation=cv2.INTER_LINEAR)
    if rng.uniform() < 0.5:
        crop = crop[:, ::-1]
    gain = rng.uniform(0.6, 1.3) * rng.uniform(0.8, 1.2, size=3)
    if np.ptp(photo[::16, ::16].astype(np.int16), axis=-1).max() < 4:  # grey photo: tint it
        gain = gain * (0.5 + random_color(rng, sat=(0.1, 0.6), val=(0.8, 1.0)))
    offset = rng.uniform(-30, 30)
    return np.clip(crop.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)


class BackgroundBank:
    """Samples backgrounds; photos are loaded once, on first use, per process."""

    def __init__(self, photo_prob: float = 0.5):
        self.photo_prob = photo_prob
        self._photos: list[np.ndarray] | None = None

    @property
    def photos(self) -> list[np.ndarray]:
        """The licensed photos (loaded lazily so that pickling to workers stays cheap)."""
        if self._photos is None:
            self._photos = load_photos()
        return self._photos

    def __getstate__(self) -> dict:
        return {"photo_prob": self.photo_prob, "_photos": None}

    def sample(self, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
        """A background image, RGB uint8 (h, w, 3)."""
        if rng.uniform() < self.photo_prob and self.photos:
            photo = self.photos[int(rng.integers(len(self.photos)))]
            return photo_background(rng, photo, h, w)
        return procedural_background(rng, h, w)
