"""Body poses for the pose prior: exactly the poses the synthetic engine renders, and noise.

hmrt ships no motion-capture data (research/body-model-and-data.md §6.3), so the prior learns
the distribution HKMR is trained on: :meth:`SyntheticGenerator.sample_body` with the engine's
default :class:`~hmrt.train.data.synth.SynthConfig` (key poses with noise, blends of two key
poses, draws towards the joint-limit box, half of them mirrored, re-drawn on self-collision,
random body shapes for the collision test). Only the 23 body joints are kept, as axis-angle
(``matrix_to_axis_angle`` of the engine's rotation matrices, angle in [0, pi]: the same
conversion as the engine's ``pose`` label).
"""

from __future__ import annotations

import contextlib

import numpy as np

from hmrt.runtime.rotations import matrix_to_axis_angle, quaternion_to_axis_angle


def engine_body_poses(n: int, seed: int, progress: bool = False) -> np.ndarray:
    """``n`` body poses ``(n, 23, 3)`` float32 axis-angle from the synthetic engine's sampler.

    Deterministic in ``seed``. About 1.2 ms a pose on one CPU core (one body-model pass for the
    self-collision test per draw).
    """
    from tqdm import tqdm

    from hmrt.train.data.synth import SyntheticGenerator

    engine = SyntheticGenerator(seed=seed)
    rng = np.random.default_rng([int(seed), 0x9051])
    eye = np.eye(3)
    out = np.empty((n, 23, 3), np.float32)
    with _one_blas_thread():
        for i in tqdm(range(n), desc="poses", unit="pose", disable=not progress, leave=False):
            _, rotmats, _, _ = engine.sample_body(rng, eye)
            out[i] = matrix_to_axis_angle(rotmats[1:].astype(np.float64))
    return out


def _one_blas_thread() -> contextlib.AbstractContextManager:
    """One BLAS thread while the engine runs (its products are small; see
    :func:`hmrt.train.data.synth.limit_blas_threads`), restored after; a no-op without
    threadpoolctl."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def random_rotation_poses(n: int, seed: int, joints: int = 23) -> np.ndarray:
    """``n`` implausible poses ``(n, joints, 3)``: every joint an independent uniformly random
    rotation (Haar measure, from normalised Gaussian quaternions), as axis-angle in [0, pi].

    The behavioural check of a prior: its KL should be far higher here than on sampled poses.
    """
    rng = np.random.default_rng([int(seed), 0x4015E])
    q = rng.normal(size=(n, joints, 4))
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    return quaternion_to_axis_angle(q).astype(np.float32)
