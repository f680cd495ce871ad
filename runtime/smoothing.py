"""Temporal smoothing of a person's reconstruction: One Euro filters, rotations on quaternions.

The One Euro filter (Casiez, Roussel, Vogel, CHI 2012) is a low-pass filter whose cutoff
rises with speed: ``fc = min_cutoff + beta * |dx/dt|``, so a still person stops jittering and
a moving one is not dragged behind. hmrt filters, per person track:

* 3D joints **root-relative** (speed per joint, metres/second); mesh vertices follow the
  weight of their nearest joint (:class:`FollowerFilter`), so the mesh moves with its joints,
* the full-image **translation** per axis (depth is noisier than x/y and must not slow them),
* the 2D joints in image pixels (for drawing),
* the 24 **rotations on the unit quaternion sphere**: sign continuity against the previous
  estimate, angular speed from the geodesic angle, and a slerp step towards the new
  rotation, so the filtered value is always a rotation (filtering matrix entries is not),
* the shape ``betas`` with a plain low-pass (a person's shape does not change).

Presets (``Smoother(preset)`` / ``hmrt run --smooth``): ``none`` (off), ``light`` (little lag,
some jitter left), ``default``, ``heavy`` (steadiest; visible lag on fast moves). They scale
the cutoffs of :data:`BASE` by the factor in :data:`PRESETS`. Times are seconds; without
timestamps the caller's frame rate (30 fps by default) is assumed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from hmrt.runtime.errors import InputError
from hmrt.runtime.rotations import matrix_to_quaternion, quaternion_to_matrix


@dataclass(frozen=True)
class OneEuroParams:
    """``min_cutoff`` (Hz) at rest, ``beta`` (Hz per unit/s of speed), ``d_cutoff`` (Hz)."""

    min_cutoff: float
    beta: float
    d_cutoff: float = 1.0


# Units: metres for 3D, pixels for 2D, radians for rotations. These are the ``default``
# preset, tuned on synthetic trajectories (tests/test_runtime_smoothing.py): about a third of
# the frame-to-frame acceleration (jitter) of 1 cm / 2 px / 2 degree noise remains at rest,
# with at most two frames of lag at walking speeds.
BASE: dict[str, OneEuroParams] = {
    "pose3d": OneEuroParams(min_cutoff=1.0, beta=3.0),
    "translation": OneEuroParams(min_cutoff=1.0, beta=1.0),
    "joints2d": OneEuroParams(min_cutoff=1.0, beta=0.03),
    "rotations": OneEuroParams(min_cutoff=1.0, beta=1.0),
    "betas": OneEuroParams(min_cutoff=0.3, beta=0.0),
}
# preset -> (factor on min_cutoff, factor on beta); None = smoothing off.
PRESETS: dict[str, tuple[float, float] | None] = {
    "none": None,
    "light": (1.5, 3.0),
    "default": (1.0, 1.0),
    "heavy": (0.5, 0.3),
}


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    """Exponential-smoothing weight of the new sample for a first-order low-pass at ``cutoff``."""
    r = 2.0 * math.pi * np.asarray(cutoff) * dt
    return r / (r + 1.0)


class OneEuro:
    """One Euro filter over ``(P, D)`` arrays: P points of dimension D, speed per point."""

    def __init__(self, params: OneEuroParams):
        self.params = params
        self.x: np.ndarray | None = None
        self.dx: np.ndarray | None = None
        self.alpha: np.ndarray | None = None  # last per-point weight of the new sample

    def reset(self) -> None:
        """Forget the history: the next sample passes through unchanged."""
        self.x = self.dx = self.alpha = None

    def __call__(self, x: np.ndarray, dt: float) -> np.ndarray:
        """Filter one sample ``x`` taken ``dt`` seconds after the previous one."""
        x = np.asarray(x, dtype=np.float64)
        if self.x is None or self.x.shape != x.shape:
            self.x, self.dx = x.copy(), np.zeros(x.shape[:-1])
            self.alpha = np.ones(x.shape[:-1])
            return x.copy()
        p = self.params
        speed = np.linalg.norm(x - self.x, axis=-1) / dt
        self.dx = self.dx + _alpha(p.d_cutoff, dt) * (speed - self.dx)
        self.alpha = _alpha(p.min_cutoff + p.beta * self.dx, dt)
        self.x = self.x + self.alpha[..., None] * (x - self.x)
        return self.x.copy()


class FollowerFilter:
    """Low-pass for many points (mesh vertices) that reuses a One Euro filter's per-point
    weights: each vertex moves with the weight of its nearest joint, found on the first frame.

    Smooths the mesh exactly like the joints it hangs on, at the cost of one gather and one
    multiply-add per frame (an independent One Euro per vertex costs ~10x more).
    """

    def __init__(self, leader: OneEuro):
        self.leader = leader
        self.x: np.ndarray | None = None
        self.owner: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the history (the vertex -> joint assignment of the mesh is kept)."""
        self.x = None

    def __call__(self, x: np.ndarray, joints: np.ndarray) -> np.ndarray:
        """Filter ``x`` (V, 3) after the leader has filtered ``joints`` (J, 3) this frame."""
        x = np.asarray(x, dtype=np.float32)
        if self.owner is None or self.owner.shape[0] != x.shape[0]:
            j = np.asarray(joints, np.float32)
            # |x - j|^2 = |x|^2 - 2 x.j + |j|^2, as one matrix product (fast for 10k+ vertices).
            d = (j * j).sum(1)[None, :] - 2.0 * (x @ j.T)
            self.owner = d.argmin(axis=1)
        if self.x is None or self.x.shape != x.shape or self.leader.alpha is None:
            self.x = x.copy()
            return x.copy()
        a = self.leader.alpha.astype(np.float32)[self.owner][:, None]
        self.x += a * (x - self.x)
        return self.x.copy()


def _slerp(q0: np.ndarray, q1: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation of unit quaternions ``(P, 4)`` (same hemisphere) by ``t (P,)``."""
    dot = np.clip(np.sum(q0 * q1, axis=-1), -1.0, 1.0)
    theta = np.arccos(dot)
    sin = np.sin(theta)
    small = sin < 1e-6
    safe = np.where(small, 1.0, sin)
    w0 = np.where(small, 1.0 - t, np.sin((1.0 - t) * theta) / safe)
    w1 = np.where(small, t, np.sin(t * theta) / safe)
    q = w0[..., None] * q0 + w1[..., None] * q1
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


class RotationOneEuro:
    """One Euro filter for ``(P, 3, 3)`` rotations, working on unit quaternions."""

    def __init__(self, params: OneEuroParams):
        self.params = params
        self.q: np.ndarray | None = None
        self.speed: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the history."""
        self.q = self.speed = None

    def __call__(self, rotmats: np.ndarray, dt: float) -> np.ndarray:
        """Filter one ``(P, 3, 3)`` sample; returns rotation matrices."""
        q = matrix_to_quaternion(np.asarray(rotmats, dtype=np.float64))
        if self.q is None or self.q.shape != q.shape:
            self.q, self.speed = q, np.zeros(q.shape[:-1])
            return quaternion_to_matrix(q)
        # q and -q are the same rotation: take the one nearest the current estimate.
        dot = np.sum(q * self.q, axis=-1)
        q = np.where((dot < 0)[..., None], -q, q)
        angle = 2.0 * np.arccos(np.clip(np.abs(dot), 0.0, 1.0))  # geodesic distance
        p = self.params
        self.speed = self.speed + _alpha(p.d_cutoff, dt) * (angle / dt - self.speed)
        a = _alpha(p.min_cutoff + p.beta * self.speed, dt)
        self.q = _slerp(self.q, q, a)
        return quaternion_to_matrix(self.q)


def preset_params(preset: str) -> dict[str, OneEuroParams] | None:
    """Per-channel parameters of a named preset (None for ``none``)."""
    if preset not in PRESETS:
        raise InputError(f"unknown smoothing preset {preset!r}; choose {', '.join(PRESETS)}")
    factors = PRESETS[preset]
    if factors is None:
        return None
    fc, fb = factors
    return {k: replace(p, min_cutoff=p.min_cutoff * fc, beta=p.beta * fb) for k, p in BASE.items()}


class Smoother:
    """Smooths one person's per-frame outputs; create one per tracked person.

    ``preset`` is a name from :data:`PRESETS` or a dict channel -> :class:`OneEuroParams`
    (channels of :data:`BASE`). ``fps`` is used when frames come without timestamps.
    """

    def __init__(self, preset: str | dict[str, OneEuroParams] = "default", fps: float = 30.0):
        params = preset_params(preset) if isinstance(preset, str) else dict(preset)
        self.enabled = params is not None
        self.fps = float(fps)
        self._t: float | None = None
        p = params or BASE
        self.pose3d_joints = OneEuro(p["pose3d"])
        self.pose3d_vertices = FollowerFilter(self.pose3d_joints)
        self.translation = OneEuro(p["translation"])
        self.joints2d = OneEuro(p["joints2d"])
        self.rotations = RotationOneEuro(p["rotations"])
        self.betas = OneEuro(p["betas"])

    def reset(self) -> None:
        """Start over (after the tracker re-acquires the person, or a scene cut)."""
        self._t = None
        for f in (self.pose3d_joints, self.pose3d_vertices, self.translation, self.joints2d,
                  self.rotations, self.betas):  # fmt: skip
            f.reset()

    def _dt(self, timestamp: float | None) -> float:
        if timestamp is None:
            t = (self._t if self._t is not None else -1.0 / self.fps) + 1.0 / self.fps
        else:
            t = float(timestamp)
        dt = t - self._t if self._t is not None else 1.0 / self.fps
        self._t = t
        # A repeated or backwards timestamp would divide by zero: assume one frame passed.
        return dt if dt > 1e-6 else 1.0 / self.fps

    def __call__(
        self,
        joints3d: np.ndarray,
        vertices: np.ndarray,
        translation: np.ndarray,
        joints2d: np.ndarray,
        rotmats: np.ndarray | None,
        betas: np.ndarray | None,
        timestamp: float | None = None,
    ) -> dict[str, np.ndarray | None]:
        """Filter one frame. 3D inputs are root-relative; returns the same keys, filtered."""
        out = {
            "joints3d": joints3d,
            "vertices": vertices,
            "translation": translation,
            "joints2d": joints2d,
            "rotmats": rotmats,
            "betas": betas,
        }
        if not self.enabled:
            return out
        dt = self._dt(timestamp)
        dtype = joints3d.dtype
        out["joints3d"] = self.pose3d_joints(joints3d, dt).astype(dtype)
        out["vertices"] = self.pose3d_vertices(vertices, joints3d).astype(vertices.dtype)
        out["translation"] = self.translation(translation[:, None], dt)[:, 0].astype(dtype)
        out["joints2d"] = self.joints2d(joints2d, dt).astype(joints2d.dtype)
        if rotmats is not None:
            out["rotmats"] = self.rotations(rotmats, dt).astype(rotmats.dtype)
        if betas is not None:
            out["betas"] = self.betas(betas[None], dt)[0].astype(betas.dtype)
        return out
