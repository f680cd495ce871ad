"""The synthetic data engine: posed, shaped, dressed and lit bodies in random scenes, with labels.

``SyntheticGenerator(config, seed).sample(index)`` is a pure function of ``(seed, index)``
(``np.random.default_rng([seed, index])``). One sample is a full scene image of the configured
size with one person placed in it, plus every label, from one rasterization:

==================  ==============  ==========================================================
key                 shape / dtype   meaning
==================  ==============  ==========================================================
``image``           (H, W, 3) u8    RGB scene
``mask``            (H, W) u8       1 where the person is visible (after occluders)
``parts``           (H, W) u8       DensePose part 1..24 of the visible surface, 0 elsewhere
``uv``              (H, W, 2) f32   per-part U, V in [0, 1] (0 off the person)
``cont_uv``         (H, W, 2) f32   continuous-UV chart coordinates (0 off the person)
``occluder_mask``   (H, W) u8       1 where a synthetic occluder was drawn
``joints2d``        (24, 3) f32     pixels (x, y) in hmrt's convention + in-image flag
``joints_visible``  (24,) u8        in image, not under an occluder or another body part (below)
``joints3d``        (24, 3) f32     camera frame, metres
``vertices``        (V, 3) f32      camera frame, metres
``rotmats``         (24, 3, 3) f32  local rotations, joint 0 = global orientation in the camera
``pose``            (72,) f32       the same as axis-angle (SMPL layout)
``betas``           (10,) f32       shape
``transl``          (3,) f32        ``vertices = BodyModel.forward(rotmats, betas) + transl``
``K``               (3, 3) f32      intrinsics (principal point at the image centre)
``bbox``            (4,) f32        x0, y0, x1, y1 of all projected vertices (may leave image)
``center``          (2,) f32        bbox centre
``scale``           () f32          SPIN scale ``1.2 * max(bbox w, h) / 200``
==================  ==============  ==========================================================

A joint is hidden by the body when the surface at its pixel belongs to none of the joint's own
DensePose parts (:data:`JOINT_OWN_PARTS`) and lies more than ``joint_depth_margin`` (5 cm) in
front of it. Pixel and camera conventions are those of :mod:`hmrt.runtime.camera` (pixel
centres at +0.5, camera +X right, +Y down, +Z forward). The IUV *image* encoding is not stored;
build it with ``hmrt.runtime.render.maps.iuv_image(parts, uv)``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

import cv2
import numpy as np

from hmrt.runtime import camera
from hmrt.runtime.render import rasterize
from hmrt.runtime.render.maps import interpolate_corners, iuv
from hmrt.runtime.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from hmrt.train.data.appearance import Appearance, AppearanceModel
from hmrt.train.data.backgrounds import BackgroundBank
from hmrt.train.data.occluders import draw_occluders
from hmrt.train.data.poses import PoseSampler, params_to_rotmats, self_collision

GENERATOR_VERSION = 1
"""Bumped whenever the same (config, seed, index) would produce a different sample."""


@dataclass(frozen=True)
class SynthConfig:
    """Everything that decides what the synthetic engine draws (all ranges are uniform).

    Camera: ``focal_range`` is the focal length in units of ``max(width, height)`` (1.0 is a
    53-degree field of view across the longer side); ``distance_range`` clips the camera-to-pelvis
    depth in metres (the depth otherwise follows from focal and person size);
    ``elevation_range`` is how far the camera looks down on the person (degrees, negative: from
    below); ``roll_range`` is the in-plane rotation of the camera (degrees).
    Person: ``size_range`` is the larger side of the person's box as a fraction of the image's
    shorter side; ``truncation_prob`` lets the box leave the image partly; ``yaw_range`` is the
    body's heading relative to the camera (0 faces it); ``lean_std`` tilts the body (degrees).
    """

    width: int = 224
    height: int = 224
    focal_range: tuple[float, float] = (0.8, 2.2)
    distance_range: tuple[float, float] = (1.0, 15.0)
    elevation_range: tuple[float, float] = (-10.0, 35.0)
    roll_range: tuple[float, float] = (-10.0, 10.0)
    size_range: tuple[float, float] = (0.45, 0.9)
    truncation_prob: float = 0.1
    yaw_range: tuple[float, float] = (-180.0, 180.0)
    lean_std: float = 5.0
    betas_std: float = 1.0
    betas_clip: float = 3.0
    pose_mix: tuple[float, float, float] = (0.45, 0.35, 0.2)
    pose_noise: float = 0.06
    collision_retries: int = 4
    photo_background_prob: float = 0.5
    occluder_prob: float = 0.3
    max_occluders: int = 3
    noise_prob: float = 0.3
    blur_prob: float = 0.2
    jpeg_prob: float = 0.3
    joint_depth_margin: float = 0.05
    body_path: str | None = None

    def to_dict(self) -> dict:
        """Plain JSON-able dict (for manifests and cache keys)."""
        return dataclasses.asdict(self)

    def key(self) -> str:
        """A short stable hash of the config and the generator version."""
        blob = json.dumps({"v": GENERATOR_VERSION, **self.to_dict()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _own_parts() -> np.ndarray:
    """(24, 25) bool: DensePose parts whose surface may cover each SMPL joint without hiding it.

    DaNet's ``smpl2dp_part`` table (seed-danet.md 6.3), plus the torso for hips, collars and
    shoulders, whose joint centres lie under the torso surface as well.
    """
    torso = [1, 2]
    parts = {
        0: torso, 3: torso, 6: torso, 9: torso, 12: [1, 2, 23, 24], 15: [23, 24],
        1: [1, 2, 8, 10], 2: [1, 2, 7, 9], 4: [8, 10, 12, 14], 5: [7, 9, 11, 13],
        7: [12, 14, 5], 10: [12, 14, 5], 8: [11, 13, 6], 11: [11, 13, 6],
        13: [1, 2, 15, 17], 16: [1, 2, 15, 17], 14: [1, 2, 16, 18], 17: [1, 2, 16, 18],
        18: [15, 17, 19, 21], 19: [16, 18, 20, 22],
        20: [19, 21, 4], 22: [19, 21, 4], 21: [20, 22, 3], 23: [20, 22, 3],
    }  # fmt: skip
    table = np.zeros((24, 25), bool)
    for j, ps in parts.items():
        table[j, ps] = True
    return table


JOINT_OWN_PARTS = _own_parts()


def camera_rotation(elevation: float, roll: float) -> np.ndarray:
    """World (Y up, body facing +Z) -> camera (OpenCV) rotation, looking down by ``elevation``."""
    e = np.deg2rad(elevation)
    r_cw = np.array([[1.0, 0.0, 0.0], [0.0, -np.cos(e), np.sin(e)], [0.0, -np.sin(e), -np.cos(e)]])
    return axis_angle_to_matrix(np.array([0.0, 0.0, np.deg2rad(roll)])) @ r_cw


def spin_scale(bbox: np.ndarray) -> float:
    """SPIN's ``scale`` of a box: ``1.2 * max(w, h) / 200`` (the crop side is ``200 * scale``)."""
    return float(1.2 * max(bbox[2] - bbox[0], bbox[3] - bbox[1]) / 200.0)


class SyntheticGenerator:
    """Deterministic synthetic samples: ``sample(index)`` depends only on (config, seed, index).

    ``body`` defaults to ``BodyModel(config.body_path)``; it needs the surface arrays
    (``dp_I``, ``dp_uv``, ``cont_vt``/``cont_ft``) for the dense maps.
    """

    def __init__(self, config: SynthConfig | None = None, seed: int = 0, body=None):
        from hmrt.runtime.body import BodyModel

        self.config = config or SynthConfig()
        self.seed = int(seed)
        self.body = body if body is not None else BodyModel(self.config.body_path)
        b = self.body
        if b.dp_I is None or b.dp_uv is None or b.cont_vt is None or b.cont_ft is None:
            from hmrt.runtime.errors import InputError

            raise InputError(
                f"{b.path}: the body model has no DensePose/UV surface data (dp_I, dp_uv, "
                "cont_vt, cont_ft), which the synthetic engine renders; use the bundled model"
            )
        self.faces = np.ascontiguousarray(b.faces, dtype=np.int32)
        self.cont_corners = np.asarray(b.cont_vt, np.float32)[np.asarray(b.cont_ft)]
        self.poses = PoseSampler(mix=self.config.pose_mix, noise=self.config.pose_noise)
        self.appearance = AppearanceModel(b)
        self.backgrounds = BackgroundBank(self.config.photo_background_prob)

    def rng(self, index: int) -> np.random.Generator:
        """The random stream of sample ``index``."""
        return np.random.default_rng([self.seed, int(index)])

    # -- body ----------------------------------------------------------------------------------
    def sample_body(self, rng: np.random.Generator, global_orient: np.ndarray):
        """Betas, rotmats (24,3,3) and the posed body (vertices, joints) in the body frame."""
        c = self.config
        betas = np.clip(rng.normal(0.0, c.betas_std, 10), -c.betas_clip, c.betas_clip)
        betas = betas[: self.body.n_betas].astype(np.float32)
        for _ in range(c.collision_retries + 1):
            rotmats = np.concatenate(
                [global_orient[None], params_to_rotmats(self.poses.sample(rng))]
            )
            verts, joints = self.body.forward(rotmats[None], betas[None])
            if not self_collision(joints[0]):
                break
        return betas, rotmats.astype(np.float32), verts[0], joints[0]

    # -- scene ---------------------------------------------------------------------------------
    def place(self, rng: np.random.Generator, verts: np.ndarray, joints: np.ndarray):
        """Intrinsics and translation putting the body in view at a random size and position."""
        c = self.config
        w, h = c.width, c.height
        f = rng.uniform(*c.focal_range) * max(w, h)
        K = camera.intrinsics(f, f, w / 2.0, h / 2.0)
        rel = verts - joints[0]
        extent = float(max(np.ptp(rel[:, 0]), np.ptp(rel[:, 1])))
        size_px = rng.uniform(*c.size_range) * min(w, h)
        depth = float(np.clip(f * extent / size_px, *c.distance_range))
        # Box of the body around a pelvis on the optical axis, then shift it in the image.
        box0 = projected_box(rel, K, np.array([0.0, 0.0, depth]))
        lo, hi = box0[:2] - [w / 2.0, h / 2.0], box0[2:] - [w / 2.0, h / 2.0]
        slack = (hi - lo) * 0.3 if rng.uniform() < c.truncation_prob else np.zeros(2)
        low = -lo - slack
        high = np.array([w, h]) - hi + slack
        centre = np.where(
            low <= high, rng.uniform(np.minimum(low, high), np.maximum(low, high)), (low + high) / 2
        )
        pelvis = np.array(
            [(centre[0] - w / 2.0) * depth / f, (centre[1] - h / 2.0) * depth / f, depth]
        )
        return K, pelvis - joints[0]

    def render(
        self,
        rng: np.random.Generator,
        verts_cam: np.ndarray,
        joints_cam: np.ndarray,
        K: np.ndarray,
        appearance: Appearance,
        background: np.ndarray,
        occluders: bool = True,
        effects: bool = True,
    ) -> dict:
        """Rasterize once and derive the image and every dense label from that raster."""
        c = self.config
        h, w = background.shape[:2]
        raster = rasterize(verts_cam, self.faces, K, h, w)
        fid = raster.face_id
        parts, uv = iuv(raster, self.body.dp_I, self.body.dp_uv)
        cont_uv = interpolate_corners(fid, raster.bary, self.cont_corners)
        flat, rgb = self.appearance.shade(appearance, verts_cam, fid, raster.bary)
        image = background.copy()
        image.reshape(-1, 3)[flat] = (rgb * 255.0 + 0.5).astype(np.uint8)
        mask = fid >= 0
        _soften_edges(image, mask)
        uv2d = camera.project(np.asarray(joints_cam, np.float64), K)
        bbox = projected_box(verts_cam, K)
        occ = np.zeros((h, w), bool)
        if occluders and rng.uniform() < c.occluder_prob:
            count = int(rng.integers(1, c.max_occluders + 1))
            occ = draw_occluders(image, rng, bbox, count, photos=self.backgrounds.photos)
            mask &= ~occ
            parts[occ] = 0
            uv[occ] = 0.0
            cont_uv[occ] = 0.0
        if effects:
            image = _degrade(image, rng, c)
        in_image = (
            (joints_cam[:, 2] > 0)
            & (uv2d[:, 0] >= 0) & (uv2d[:, 0] < w) & (uv2d[:, 1] >= 0) & (uv2d[:, 1] < h)
        )  # fmt: skip
        px = np.clip(np.floor(uv2d[:, 0]), 0, w - 1).astype(int)
        py = np.clip(np.floor(uv2d[:, 1]), 0, h - 1).astype(int)
        f_at = fid[py, px]
        own = JOINT_OWN_PARTS[np.arange(24), self.body.dp_I[np.maximum(f_at, 0)]]
        behind = joints_cam[:, 2] - raster.depth[py, px] > c.joint_depth_margin
        hidden = (f_at >= 0) & ~own & behind
        visible = in_image & ~hidden & ~occ[py, px]
        return {
            "image": image,
            "mask": mask.astype(np.uint8),
            "parts": parts,
            "uv": uv,
            "cont_uv": cont_uv,
            "occluder_mask": occ.astype(np.uint8),
            "joints2d": np.concatenate([uv2d, in_image[:, None]], axis=1).astype(np.float32),
            "joints_visible": visible.astype(np.uint8),
            "bbox": bbox.astype(np.float32),
        }

    def sample(self, index: int) -> dict:
        """Sample ``index`` (see the module docstring for the keys)."""
        c = self.config
        rng = self.rng(index)
        yaw = rng.uniform(*c.yaw_range)
        lean = rng.normal(0.0, c.lean_std, 2)
        r_world = axis_angle_to_matrix(
            np.deg2rad(np.array([0.0, yaw, 0.0]))
        ) @ axis_angle_to_matrix(np.deg2rad(np.array([lean[0], 0.0, lean[1]])))
        r_cam = camera_rotation(rng.uniform(*c.elevation_range), rng.uniform(*c.roll_range))
        betas, rotmats, verts, joints = self.sample_body(rng, r_cam @ r_world)
        K, transl = self.place(rng, verts, joints)
        verts_cam = (verts + transl).astype(np.float32)
        joints_cam = (joints + transl).astype(np.float32)
        appearance = self.appearance.sample(rng)
        background = self.backgrounds.sample(rng, c.height, c.width)
        out = self.render(rng, verts_cam, joints_cam, K, appearance, background)
        bbox = out["bbox"]
        out.update(
            joints3d=joints_cam,
            vertices=verts_cam,
            rotmats=rotmats,
            pose=matrix_to_axis_angle(rotmats.astype(np.float64)).reshape(72).astype(np.float32),
            betas=betas,
            transl=transl.astype(np.float32),
            K=K.astype(np.float32),
            center=np.array([(bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2], np.float32),
            scale=np.float32(spin_scale(bbox)),
        )
        return out


def limit_blas_threads() -> None:
    """Use one BLAS thread in this process (call once per data worker process).

    The engine's matrix products are small; with several processes on few cores, multi-threaded
    OpenBLAS threads spin against each other and ran the skinning product about 20 times slower
    on the loaded 2-core development machine. Workers parallelise by process instead. Needs
    threadpoolctl (the ``train`` extra); without it this does nothing.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(1, user_api="blas")


def projected_box(points: np.ndarray, K: np.ndarray, offset: np.ndarray | None = None):
    """Box ``(x0, y0, x1, y1)`` of the projection of ``points + offset`` (P, 3) with ``K``.

    Column-wise arithmetic: numpy's ``min(axis=0)`` over (P, 2) arrays is ~10x slower.
    """
    p = np.asarray(points, np.float64)
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    if offset is not None:
        x, y, z = x + offset[0], y + offset[1], z + offset[2]
    iz = 1.0 / z
    u = (K[0, 0] * x + K[0, 1] * y) * iz + K[0, 2]
    v = K[1, 1] * y * iz + K[1, 2]
    return np.array([u.min(), v.min(), u.max(), v.max()])


def _soften_edges(image: np.ndarray, mask: np.ndarray) -> None:
    """Blend the one-pixel band around the silhouette (cheap anti-aliasing, in place)."""
    m = mask.astype(np.uint8)
    kernel = np.ones((3, 3), np.uint8)
    band = cv2.dilate(m, kernel) != cv2.erode(m, kernel)
    if band.any():
        blurred = cv2.GaussianBlur(image, (3, 3), 0.8)
        image[band] = blurred[band]


def _degrade(image: np.ndarray, rng: np.random.Generator, c: SynthConfig) -> np.ndarray:
    """Camera-like degradations: sensor noise, defocus blur, JPEG artefacts."""
    if rng.uniform() < c.blur_prob:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.4, 1.2))
    if rng.uniform() < c.noise_prob:
        noise = rng.standard_normal(image.shape, dtype=np.float32) * rng.uniform(1.0, 6.0)
        image = np.clip(image + noise, 0, 255).astype(np.uint8)
    if rng.uniform() < c.jpeg_prob:
        ok, buf = cv2.imencode(
            ".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 95))]
        )
        if ok:
            image = np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
    return image
