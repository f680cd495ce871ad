"""Training samples for BoBW's IK stage: hmrt's pose sampler standing in for mocap.

The paper trains the IK nets on mocap joints (AMASS, AIST++, SPIN fits) with Gaussian noise and
30% random zeroing (seed-bobw.md §1.4 f). hmrt ships no mocap, so the poses and betas are the
synthetic engine's (:meth:`SyntheticGenerator.sample_body`, default :class:`SynthConfig`: key
poses, blends, limit-box draws, mirrored, self-collisions re-drawn, betas ``N(0,1)`` clipped to
±3), the distribution every hmrt model is trained on.

* :class:`PosePool`: body poses ``(n, 23, 3)`` axis-angle and their betas ``(n, 10)``, drawn
  once (about 1.2 ms a pose) and cached by :func:`load_pose_pool` in a ``.npz``.
* The root orientation is drawn per sample exactly as :meth:`SyntheticGenerator.sample` labels
  ``rotmats[0]``: ``camera_rotation(elevation, roll) @ R_y(yaw) @ R(lean)``, i.e. the body's
  orientation in the camera frame (OpenCV: +Y down, +Z forward), since the IK's input joints are
  camera-frame (:func:`camera_frame_orientations`).
* Targets (:func:`posed_targets`) from :class:`hmrt.train.body.BodyLayer`: the LSP-14 joints
  (``lsp14_regressor @ vertices``) and the vertices, both minus the mesh root joint
  ``J_regressor[0] @ vertices`` (the frame of every hmrt model's outputs).
* Inputs (:func:`corrupt_joints`): joints + ``N(0, sigma^2)`` per coordinate, then each joint
  zeroed with probability ``drop_prob`` (its ``visible`` flag 0).

:class:`IKSampleSource` draws batches from one seeded stream; a validation set is one fixed
batch of a source built on a separately drawn pool.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from hmrt.runtime.rotations import axis_angle_to_matrix as np_axis_angle_to_matrix
from hmrt.runtime.rotations import matrix_to_axis_angle as np_matrix_to_axis_angle
from hmrt.train.rotations import axis_angle_to_matrix

POOL_FORMAT = "hmrt-bobw-ik-poses"


@dataclass(frozen=True)
class PosePool:
    """Engine body poses ``pose (n, 23, 3)`` float32 axis-angle (joints 1..23) and the betas
    ``(n, 10)`` float32 the engine drew with each."""

    pose: np.ndarray
    betas: np.ndarray

    def __len__(self) -> int:
        return len(self.pose)


def _one_blas_thread() -> contextlib.AbstractContextManager:
    """One BLAS thread while the engine's small products run (no-op without threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def draw_pose_pool(n: int, seed: int, progress: bool = False) -> PosePool:
    """``n`` (pose, betas) draws of the engine's body sampler; deterministic in ``seed``."""
    from tqdm import tqdm

    from hmrt.train.data.synth import SyntheticGenerator

    engine = SyntheticGenerator(seed=seed)
    rng = np.random.default_rng([int(seed), 0xB0B1])
    eye = np.eye(3)
    pose = np.empty((n, 23, 3), np.float32)
    betas = np.zeros((n, 10), np.float32)
    with _one_blas_thread():
        for i in tqdm(range(n), desc="ik poses", unit="pose", disable=not progress, leave=False):
            b, rotmats, _, _ = engine.sample_body(rng, eye)
            pose[i] = np_matrix_to_axis_angle(rotmats[1:].astype(np.float64))
            betas[i, : len(b)] = b
    return PosePool(pose, betas)


def load_pose_pool(path: str | Path, n: int, seed: int, progress: bool = False) -> PosePool:
    """The pool cached at ``path`` when it holds ``n`` poses of ``seed`` and the current
    generator version; else drawn (:func:`draw_pose_pool`) and written there atomically."""
    from hmrt.runtime.atomic import atomic_path
    from hmrt.train.data.synth import GENERATOR_VERSION

    path = Path(path)
    want = (POOL_FORMAT, int(seed), int(n), GENERATOR_VERSION)
    if path.is_file():
        with np.load(path) as data:
            have = (str(data["format"]), int(data["seed"]), len(data["pose"]), int(data["version"]))
            if have == want:
                return PosePool(np.asarray(data["pose"]), np.asarray(data["betas"]))
    pool = draw_pose_pool(n, seed, progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        np.savez(
            f, format=POOL_FORMAT, seed=np.int64(seed), version=np.int64(GENERATOR_VERSION),
            pose=pool.pose, betas=pool.betas,
        )  # fmt: skip
    return pool


def camera_frame_orientations(rng: np.random.Generator, n: int, synth=None) -> np.ndarray:
    """``(n, 3, 3)`` float64 root orientations in the camera frame, drawn as
    :meth:`SyntheticGenerator.sample` draws them (same ranges and formula; ``synth`` a
    :class:`SynthConfig`, default the engine's)."""
    from hmrt.train.data.synth import SynthConfig, camera_rotation

    c = synth or SynthConfig()
    yaw = np.deg2rad(rng.uniform(*c.yaw_range, n))
    lean = np.deg2rad(rng.normal(0.0, c.lean_std, (n, 2)))
    elevation = rng.uniform(*c.elevation_range, n)
    roll = rng.uniform(*c.roll_range, n)
    zeros = np.zeros(n)
    r_yaw = np_axis_angle_to_matrix(np.stack([zeros, yaw, zeros], -1))
    r_lean = np_axis_angle_to_matrix(np.stack([lean[:, 0], zeros, lean[:, 1]], -1))
    r_cam = np.stack([camera_rotation(e, r) for e, r in zip(elevation, roll)])
    return r_cam @ r_yaw @ r_lean


def mode_orientation(synth=None) -> np.ndarray:
    """``(3,)`` axis-angle of the most typical camera-frame root: upright, facing the camera
    (yaw 0, no lean), at the middle of the elevation and roll ranges."""
    from hmrt.train.data.synth import SynthConfig, camera_rotation

    c = synth or SynthConfig()
    r = camera_rotation(float(np.mean(c.elevation_range)), float(np.mean(c.roll_range)))
    return np_matrix_to_axis_angle(r)


def posed_targets(
    body_layer, pose_aa: Tensor, betas: Tensor, lsp_regressor: Tensor, root_regressor: Tensor
) -> tuple[Tensor, Tensor]:
    """LSP-14 joints ``(N, 14, 3)`` and vertices ``(N, V, 3)`` of the body posed by ``pose_aa``
    ``(N, 72)`` and ``betas``, both minus the root joint ``root_regressor (1, V) @ vertices``.

    The same function gives the ground truth and the IK mesh of the loss (differentiable)."""
    rotmats = axis_angle_to_matrix(pose_aa.reshape(-1, 24, 3))
    vertices, _ = body_layer(rotmats, betas)
    root = torch.matmul(root_regressor, vertices)  # (N, 1, 3)
    vertices = vertices - root
    return torch.matmul(lsp_regressor, vertices), vertices


def corrupt_joints(
    joints: np.ndarray, rng: np.random.Generator, sigma: float, drop_prob: float
) -> tuple[np.ndarray, np.ndarray]:
    """``(j_initial, visible)``: ``joints (N, 14, 3)`` plus ``N(0, sigma^2)`` noise, each joint
    zeroed with probability ``drop_prob`` (``visible (N, 14)`` float32 1/0)."""
    noise = rng.normal(0.0, sigma, joints.shape)
    visible = (rng.random(joints.shape[:2]) >= drop_prob).astype(np.float32)
    return ((joints + noise) * visible[..., None]).astype(np.float32), visible


@dataclass
class IKBatch:
    """One batch: inputs ``j_initial (N,14,3)``, ``visible (N,14)``; targets ``joints
    (N,14,3)``, ``pose_aa (N,72)``, ``betas (N,10)``, ``vertices (N,V,3)`` (root-relative)."""

    j_initial: Tensor
    visible: Tensor
    joints: Tensor
    pose_aa: Tensor
    betas: Tensor
    vertices: Tensor

    def __len__(self) -> int:
        return len(self.j_initial)

    def slice(self, start: int, stop: int) -> IKBatch:
        """Rows ``start:stop`` of every field."""
        return IKBatch(**{k: v[start:stop] for k, v in vars(self).items()})


class IKSampleSource:
    """Seeded IK samples from a :class:`PosePool` (see the module docstring).

    ``body_layer`` a :class:`BodyLayer`; ``lsp_regressor (14, V)`` and ``root_regressor (1, V)``
    tensors on its device (``J_regressor[0:1]`` of the same body). ``batch(n)`` continues the
    source's own stream (``seed``), so a run's batches are reproducible.
    """

    def __init__(
        self,
        pool: PosePool,
        body_layer,
        lsp_regressor: Tensor,
        root_regressor: Tensor,
        noise_sigma: float = 0.02,
        drop_prob: float = 0.3,
        seed: int = 0,
        synth=None,
    ):
        self.pool = pool
        self.body_layer = body_layer
        self.lsp_regressor = lsp_regressor.float()
        self.root_regressor = root_regressor.float().reshape(1, -1)
        self.noise_sigma = float(noise_sigma)
        self.drop_prob = float(drop_prob)
        self.synth = synth
        self.rng = np.random.default_rng([int(seed), 0x1C])

    @property
    def device(self) -> torch.device:
        return self.lsp_regressor.device

    @torch.no_grad()
    def clean(self, n: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(joints, pose_aa, betas, vertices)`` of ``n`` fresh draws (no corruption)."""
        idx = self.rng.integers(len(self.pool), size=n)
        root = np_matrix_to_axis_angle(camera_frame_orientations(self.rng, n, self.synth))
        pose = np.concatenate([root[:, None].astype(np.float32), self.pool.pose[idx]], axis=1)
        pose_aa = torch.from_numpy(pose.reshape(n, 72)).to(self.device)
        betas = torch.from_numpy(self.pool.betas[idx]).to(self.device)
        joints, vertices = posed_targets(
            self.body_layer, pose_aa, betas, self.lsp_regressor, self.root_regressor
        )
        return joints, pose_aa, betas, vertices

    def batch(self, n: int) -> IKBatch:
        """``n`` fresh corrupted samples with their targets."""
        joints, pose_aa, betas, vertices = self.clean(n)
        j_initial, visible = corrupt_joints(
            joints.cpu().double().numpy(), self.rng, self.noise_sigma, self.drop_prob
        )
        return IKBatch(
            j_initial=torch.from_numpy(j_initial).to(self.device),
            visible=torch.from_numpy(visible).to(self.device),
            joints=joints, pose_aa=pose_aa, betas=betas, vertices=vertices,
        )  # fmt: skip

    def fixed_set(self, n: int, chunk: int = 256) -> IKBatch:
        """``n`` samples drawn in chunks (a validation set: draw it once, keep it)."""
        parts = [self.batch(min(chunk, n - s)) for s in range(0, n, chunk)]
        return IKBatch(**{k: torch.cat([getattr(p, k) for p in parts]) for k in vars(parts[0])})

    @torch.no_grad()
    def statistics(self, n: int = 4096, chunk: int = 256) -> dict[str, Tensor]:
        """What :meth:`BoBWIK.set_statistics` takes: per joint and coordinate mean and std
        ``(14, 3)`` of ``n`` clean camera-frame joints (std floored at 1 mm), and ``pose_init``
        ``(72,)``: :func:`mode_orientation` for the root, the pool's mean axis-angle for the
        body joints. Uses a separate stream, so the training batches do not depend on it."""
        saved, self.rng = self.rng, np.random.default_rng([int(n), 0x57A7])
        try:
            joints = torch.cat([self.clean(min(chunk, n - s))[0] for s in range(0, n, chunk)])
        finally:
            self.rng = saved
        pose_init = np.concatenate([mode_orientation(self.synth), self.pool.pose.mean(0).ravel()])
        return {
            "joint_mean": joints.mean(0).cpu(),
            "joint_std": joints.std(0).clamp(min=1e-3).cpu(),
            "pose_init": torch.from_numpy(pose_init.astype(np.float32)),
        }
