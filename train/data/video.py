"""Temporally smooth synthetic clips with per-frame ground truth (``hmrt synth --video``).

One person with a constant look and body shape, in front of a constant background, moves
smoothly through a seeded schedule of key poses (a few walking strides, then gestures such as
waving, reaching, squatting), interpolated with Catmull-Rom splines in pose-parameter space
(continuous velocity). The body turns and drifts sideways, and the camera sways gently
(elevation, roll, distance); the intrinsics are fixed for the clip.

Outputs, written atomically together: ``OUT.mp4`` (mp4v, decodable by OpenCV) and
``OUT.gt.npz`` beside it with, per frame ``t``: ``joints2d`` (T,24,3) pixels + in-image flag,
``joints_visible`` (T,24), ``joints3d`` (T,24,3) and ``vertices`` (T,V,3) float16 in the camera
frame (metres), ``rotmats`` (T,24,3,3), ``pose`` (T,72), ``betas`` (T,10), ``transl`` (T,3),
``K`` (T,3,3), ``bbox`` (T,4) xyxy, ``key`` (T,) the key pose the motion is leaving; plus ``fps``,
``size`` (W, H) and ``seed``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import cv2
import numpy as np

from hmrt.runtime.atomic import atomic_path
from hmrt.runtime.errors import InputError
from hmrt.runtime.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from hmrt.train.data.key_poses import KEY_POSES, WALK_CYCLE
from hmrt.train.data.poses import clip_params, params_to_rotmats
from hmrt.train.data.synth import SynthConfig, SyntheticGenerator, camera_rotation

GESTURES = (
    "stand", "wave_L", "wave_R", "reach_up_L", "reach_forward_R", "arms_up", "squat",
    "phone_L", "hands_on_hips", "look_back_R", "boxing_guard", "punch_L", "side_stretch_R",
    "jumping_jack", "arms_crossed", "kick_R", "carry", "bend_over",
)  # fmt: skip


def gt_path(video: str | os.PathLike) -> Path:
    """The ground-truth file written next to a clip: ``clip.mp4`` -> ``clip.gt.npz``."""
    v = Path(video)
    return v.with_name(v.stem + ".gt.npz")


def key_schedule(rng: np.random.Generator, seconds: float) -> tuple[list[str], list[float]]:
    """Key pose names and their times (s): two walking strides, then held gestures."""
    names, times, t = [], [], 0.0
    step = 0.27  # a quarter stride: ~1.1 s per walking cycle
    for _ in range(2):
        for key in WALK_CYCLE:
            names.append(key)
            times.append(t)
            t += step
    while t <= seconds + 1.0:  # stand, move into a gesture, hold it, and back
        g = GESTURES[int(rng.integers(len(GESTURES)))]
        for name, dur in (("stand", (0.5, 0.8)), (g, (0.5, 1.0)), (g, (0.4, 0.7))):
            names.append(name)
            times.append(t)
            t += rng.uniform(*dur)
    return names, times


def catmull_rom(keys: np.ndarray, times: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Interpolate ``keys`` (K, ...) given at increasing ``times`` (K,) at times ``t`` (T,).

    Non-uniform Catmull-Rom (finite-difference tangents): passes through every key with a
    continuous first derivative; the ends hold their tangent at zero.
    """
    keys = np.asarray(keys, np.float64)
    times = np.asarray(times, np.float64)
    k = len(keys)
    tang = np.zeros_like(keys)
    for i in range(1, k - 1):
        tang[i] = (keys[i + 1] - keys[i - 1]) / (times[i + 1] - times[i - 1])
    seg = np.clip(np.searchsorted(times, t, side="right") - 1, 0, k - 2)
    t0, t1 = times[seg], times[seg + 1]
    dt = t1 - t0
    u = np.clip((t - t0) / dt, 0.0, 1.0)
    shape = (-1,) + (1,) * (keys.ndim - 1)
    u, dt = u.reshape(shape), dt.reshape(shape)
    h00, h10 = 2 * u**3 - 3 * u**2 + 1, u**3 - 2 * u**2 + u
    h01, h11 = -2 * u**3 + 3 * u**2, u**3 - u**2
    return h00 * keys[seg] + h10 * dt * tang[seg] + h01 * keys[seg + 1] + h11 * dt * tang[seg + 1]


def render_clip(
    frames: int = 120,
    seed: int = 0,
    size: tuple[int, int] = (640, 480),
    fps: float = 30.0,
    body_path: str | None = None,
    progress: bool = True,
):
    """Yield ``(image RGB uint8, per-frame ground truth dict)`` for each frame of a clip."""
    from tqdm import tqdm

    w, h = size
    config = SynthConfig(width=w, height=h, body_path=body_path, photo_background_prob=0.7)
    gen = SyntheticGenerator(config, seed)
    rng = np.random.default_rng([seed, 0x51DE0])
    appearance = gen.appearance.sample(rng)
    background = gen.backgrounds.sample(rng, h, w)
    betas = np.clip(rng.normal(0, 0.8, gen.body.n_betas), -2.5, 2.5).astype(np.float32)
    seconds = frames / fps
    names, times = key_schedule(rng, seconds)
    keys = np.stack([KEY_POSES[n] for n in names])
    t = np.arange(frames) / fps
    params = clip_params(catmull_rom(keys, np.array(times), t))
    f = rng.uniform(0.9, 1.3) * max(w, h)
    K = np.array([[f, 0, w / 2.0], [0, f, h / 2.0], [0, 0, 1.0]])
    depth0 = f * 1.75 / (rng.uniform(0.55, 0.75) * h)
    yaw0, yaw_amp = rng.uniform(-60, 60), rng.uniform(20, 60)
    elev0, drift = rng.uniform(0, 15), rng.uniform(0.1, 0.35) * depth0 * w / f
    ph = rng.uniform(0, 2 * np.pi, 4)
    slow = 2 * np.pi * t / max(seconds, 1e-6)
    yaw = yaw0 + yaw_amp * np.sin(0.5 * slow + ph[0])
    elev = elev0 + 3.0 * np.sin(slow + ph[1])
    roll = 2.0 * np.sin(0.7 * slow + ph[2])
    depth = depth0 * (1.0 + 0.08 * np.sin(slow + ph[3]))
    xs = 0.5 * drift * np.sin(0.5 * slow + ph[0])
    segment = np.clip(np.searchsorted(np.array(times), t, side="right") - 1, 0, len(names) - 1)
    for i in tqdm(range(frames), desc="video", unit="frame", disable=not progress, file=sys.stderr):
        r_world = axis_angle_to_matrix(np.deg2rad(np.array([0.0, yaw[i], 0.0])))
        root = camera_rotation(elev[i], roll[i]) @ r_world
        rotmats = np.concatenate([root[None], params_to_rotmats(params[i])]).astype(np.float32)
        verts, joints = gen.body.forward(rotmats[None], betas[None])
        verts, joints = verts[0], joints[0]
        transl = np.array([xs[i], -0.05 * depth[i], depth[i]]) - joints[0]
        vc = (verts + transl).astype(np.float32)
        jc = (joints + transl).astype(np.float32)
        frame_rng = np.random.default_rng([seed, i, 0x51DE1])
        out = gen.render(
            frame_rng, vc, jc, K, appearance, background, occluders=False, effects=False
        )
        gt = {
            "joints2d": out["joints2d"],
            "joints_visible": out["joints_visible"],
            "joints3d": jc,
            "vertices": vc.astype(np.float16),
            "rotmats": rotmats,
            "pose": matrix_to_axis_angle(rotmats.astype(np.float64)).reshape(72).astype(np.float32),
            "betas": betas,
            "transl": transl.astype(np.float32),
            "K": K.astype(np.float32),
            "bbox": out["bbox"],
            "key": np.array(names[segment[i]]),
        }
        yield out["image"], gt


def write_clip(
    out: str | os.PathLike,
    frames: int = 120,
    seed: int = 0,
    size: tuple[int, int] = (640, 480),
    fps: float = 30.0,
    body_path: str | None = None,
    progress: bool = True,
) -> tuple[Path, Path]:
    """Write the clip and its ground truth atomically; returns (video path, gt path)."""
    out = Path(out)
    if out.suffix.lower() != ".mp4":
        raise InputError(f"{out}: the synthetic clip is written as mp4; use a .mp4 file name")
    if frames < 1:
        raise InputError(f"--frames must be >= 1, got {frames}")
    gt_file = gt_path(out)
    per_frame: dict[str, list] = {}
    with atomic_path(out) as tmp_video, atomic_path(gt_file) as tmp_gt:
        writer = cv2.VideoWriter(str(tmp_video), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        if not writer.isOpened():
            raise InputError(f"{out}: OpenCV cannot open an mp4v video writer here")
        try:
            for image, gt in render_clip(frames, seed, size, fps, body_path, progress):
                writer.write(np.ascontiguousarray(image[..., ::-1]))
                for k, v in gt.items():
                    per_frame.setdefault(k, []).append(v)
        finally:
            writer.release()
        arrays = {k: np.stack(v) for k, v in per_frame.items()}
        np.savez_compressed(
            tmp_gt,
            **arrays,
            fps=np.float32(fps),
            size=np.array(size, np.int32),
            seed=np.int64(seed),
        )
    return out, gt_file
