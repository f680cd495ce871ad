"""The one crop + augmentation pipeline shared by every dataset (synthetic, shards, SPIN npz).

Crop (SPIN/DaNet): a square of side ``200 * scale`` around ``center`` (``scale`` already holds
SPIN's 1.2 margin), resampled to ``res`` with :func:`hmrt.runtime.camera.crop_matrix` and one
``cv2.warpAffine`` (bilinear, black outside the image) exactly like the runtime's
:class:`~hmrt.runtime.preprocess.Preprocessor`, so an unaugmented training crop equals the
runtime's input for the same box.

Augmentation (SPIN ``augm_params``, training only): flip with p = 0.5; per-channel pixel gain
U[1 - 0.4, 1 + 0.4]; rotation ``clip(N(0, 30), -60, 60)`` degrees, set to 0 with p = 0.6;
scale ``clip(N(1, 0.25), 0.75, 1.25)`` on the crop side. Labels follow the image exactly:

* 2D joints go through the same affine; a flip also swaps left/right joints (``flip_joint``).
* 3D joints and the global orientation rotate about the camera axis by the in-plane angle
  (``R_aug = R_z(-rot)`` in the camera frame, y down). A flip mirrors the camera X axis:
  every rotation becomes ``M R M`` with ``M = diag(-1, 1, 1)`` (axis-angle ``(x, -y, -z)``),
  joints get ``x -> -x``, and both are permuted left/right; betas are unchanged.
* Dense targets (synthetic samples with a mesh) are **re-rendered** from the posed mesh in the
  augmented crop at ``dense_res`` rather than warped: the crop affine is folded into the
  projection (``P = A K``, vertices ``(P v)`` rasterized with an identity camera keeps depth and
  barycentrics exact), and a flip renders the mirrored mesh with vertices permuted by
  ``flip_vertex``, so a left-hand face lands where the mirrored right hand is and keeps its own
  (left) part index and UV. Occluder pixels are warped (nearest) and removed.
* ``cam`` is the weak-perspective camera ``(s, tx, ty)`` fitted by least squares
  (:func:`hmrt.runtime.camera.fit_weak_perspective`) to the root-relative 3D joints and the
  crop's 2D joints, weighted by 2D visibility; zeros where 3D joints are unknown.

Target dict (fixed shapes, collates with the default collate): see :func:`make_targets`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from hmrt.runtime import camera
from hmrt.runtime.render import rasterize
from hmrt.runtime.render.maps import interpolate_corners, iuv

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_MIRROR = np.diag([-1.0, 1.0, 1.0])

DP_PART_FLIP = np.array(
    [0, 1, 2, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15, 18, 17, 20, 19, 22, 21, 24, 23]
)
"""DensePose part index of the mirror image of each part (0 = background; torso 1, 2 stay)."""


@dataclass(frozen=True)
class AugmentConfig:
    """Crop size, normalisation and SPIN's augmentation ranges (``train=False`` disables them)."""

    res: int = 224
    dense_res: int = 56
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    train: bool = True
    flip_prob: float = 0.5
    noise_factor: float = 0.4
    rot_factor: float = 30.0
    rot_zero_prob: float = 0.6
    scale_factor: float = 0.25


@dataclass(frozen=True)
class AugParams:
    """One draw of augmentation parameters (identity: no flip, gain 1, rot 0, scale 1)."""

    flip: bool = False
    gain: tuple[float, float, float] = (1.0, 1.0, 1.0)
    rot: float = 0.0
    scale: float = 1.0


def sample_augmentation(rng: np.random.Generator, cfg: AugmentConfig) -> AugParams:
    """SPIN's ``augm_params`` with ``rng``; the identity when ``cfg.train`` is False."""
    if not cfg.train:
        return AugParams()
    flip = bool(rng.uniform() < cfg.flip_prob)
    gain = tuple(float(g) for g in rng.uniform(1 - cfg.noise_factor, 1 + cfg.noise_factor, 3))
    rot = float(np.clip(rng.normal() * cfg.rot_factor, -2 * cfg.rot_factor, 2 * cfg.rot_factor))
    scale = float(
        np.clip(rng.normal() * cfg.scale_factor + 1, 1 - cfg.scale_factor, 1 + cfg.scale_factor)
    )
    if rng.uniform() < cfg.rot_zero_prob:
        rot = 0.0
    return AugParams(flip, gain, rot, scale)


def crop_affine(center, scale: float, aug: AugParams, res: int) -> np.ndarray:
    """2x3 affine from full-image to crop continuous pixels, including rotation and flip."""
    box = np.array([center[0], center[1], 200.0 * scale * aug.scale])
    a = camera.crop_matrix(box, res, aug.rot)
    if aug.flip:
        a = np.array([[-1.0, 0.0, res], [0.0, 1.0, 0.0]]) @ np.vstack([a, [0.0, 0.0, 1.0]])
    return a


def rotation_matrix_aug(aug: AugParams) -> np.ndarray:
    """The camera-frame rotation matching the in-plane image rotation (before any flip)."""
    th = np.deg2rad(aug.rot)
    c, s = np.cos(th), np.sin(th)
    return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])


def transform_rotmats(rotmats: np.ndarray, aug: AugParams, flip_joint: np.ndarray) -> np.ndarray:
    """Apply the augmentation to SMPL rotations (24, 3, 3): rotate the root, mirror on flip."""
    r = np.array(rotmats, dtype=np.float64, copy=True)
    r[0] = rotation_matrix_aug(aug) @ r[0]
    if aug.flip:
        r = (_MIRROR @ r @ _MIRROR)[flip_joint]
    return r.astype(np.float32)


def transform_points3d(points: np.ndarray, aug: AugParams, flip_joint: np.ndarray | None):
    """Apply the augmentation to camera-frame 3D points (P, 3) (joints are permuted on flip)."""
    p = np.asarray(points, dtype=np.float64) @ rotation_matrix_aug(aug).T
    if aug.flip:
        p = p @ _MIRROR
        if flip_joint is not None:
            p = p[flip_joint]
    return p


def render_dense(
    vertices: np.ndarray,
    K: np.ndarray,
    affine: np.ndarray,
    size: int,
    body,
    flip: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parts (size, size) u8, per-part UV and continuous UV (size, size, 2) of a mesh in a crop.

    ``affine`` maps full-image pixels to *this* map's pixels (already scaled to ``size``).
    """
    proj = np.vstack([affine, [0.0, 0.0, 1.0]]) @ np.asarray(K, np.float64)
    v = np.asarray(vertices, np.float64) @ proj.T  # (x Z, y Z, Z): identity camera, same depth
    if flip:
        v = v[np.asarray(body.flip_vertex)]
    raster = rasterize(v, body.faces, np.eye(3), size, size)
    parts, uv = iuv(raster, body.dp_I, body.dp_uv)
    corners = np.asarray(body.cont_vt, np.float32)[np.asarray(body.cont_ft)]
    cont = interpolate_corners(raster.face_id, raster.bary, corners)
    return parts, uv, cont


def _normalise(crop: np.ndarray, gain, mean, std) -> np.ndarray:
    """RGB uint8 crop -> float32 (3, res, res): pixel gain, clip to 0..255, ImageNet norm."""
    x = crop.astype(np.float32) * np.asarray(gain, np.float32)
    np.clip(x, 0.0, 255.0, out=x)
    x = (x / 255.0 - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def make_targets(
    image: np.ndarray,
    center: np.ndarray,
    scale: float,
    aug: AugParams,
    cfg: AugmentConfig,
    flip_joint: np.ndarray,
    joints2d: np.ndarray,
    joints3d: np.ndarray | None = None,
    joints3d_conf: np.ndarray | None = None,
    rotmats: np.ndarray | None = None,
    betas: np.ndarray | None = None,
    has_smpl: bool = False,
    mesh: dict | None = None,
) -> dict[str, np.ndarray]:
    """Crop, augment and package one sample.

    Inputs: ``image`` RGB uint8 (H, W, 3); ``center`` (2,) and SPIN ``scale``; ``joints2d``
    (24, 3) full-image pixels + confidence; ``joints3d`` (24, 3) camera-frame metres (any
    origin) with ``joints3d_conf`` (24,); ``rotmats`` (24, 3, 3) with joint 0 in the camera
    frame; ``betas`` (10,); ``mesh`` (synthetic only): ``{"vertices" (V,3) camera frame, "K",
    "body", "occluder_mask" (H, W) or None}`` for the dense targets.

    Returns (all numpy, fixed shapes): ``image`` (3, res, res) f32 normalised; ``joints2d``
    (24, 2) f32 normalised crop coordinates in [-1, 1] at the crop edges; ``joints2d_vis`` (24,);
    ``joints3d`` (24, 3) root-relative (joint 0) metres; ``joints3d_vis`` (24,); ``rotmats``
    (24, 3, 3); ``betas`` (10,); ``cam`` (3,); ``has_smpl``, ``has_3d``, ``has_iuv`` f32
    scalars; ``iuv_index`` (d, d) int64; ``iuv_u``, ``iuv_v`` (d, d) f32; ``cont_uv`` (2, d, d)
    f32; ``box`` (3,) crop box (cx, cy, side) in the source image; ``flip`` and ``rot``.
    """
    res, d = cfg.res, cfg.dense_res
    affine = crop_affine(center, scale, aug, res)
    crop = cv2.warpAffine(
        image,
        camera.opencv_affine(affine),
        (res, res),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )
    j2 = np.asarray(joints2d, np.float64)
    xy = camera.apply_affine(affine, j2[:, :2])
    vis = j2[:, 2].copy()
    if aug.flip:
        xy, vis = xy[flip_joint], vis[flip_joint]
    out: dict[str, np.ndarray] = {
        "image": _normalise(crop, aug.gain, cfg.mean, cfg.std),
        "joints2d": (xy * (2.0 / res) - 1.0).astype(np.float32),
        "joints2d_vis": vis.astype(np.float32),
    }
    has_3d = joints3d is not None
    if has_3d:
        j3 = transform_points3d(joints3d, aug, flip_joint)
        j3 = j3 - j3[0]
        conf = np.ones(24) if joints3d_conf is None else np.asarray(joints3d_conf, np.float64)
        if aug.flip:
            conf = conf[flip_joint]
        out["joints3d"] = j3.astype(np.float32)
        out["joints3d_vis"] = conf.astype(np.float32)
        weights = vis * (conf > 0)
        out["cam"] = camera.fit_weak_perspective(j3, xy, res, weights=weights).astype(np.float32)
    else:
        out["joints3d"] = np.zeros((24, 3), np.float32)
        out["joints3d_vis"] = np.zeros(24, np.float32)
        out["cam"] = np.zeros(3, np.float32)
    if rotmats is not None:
        out["rotmats"] = transform_rotmats(rotmats, aug, flip_joint)
    else:
        out["rotmats"] = np.broadcast_to(np.eye(3, dtype=np.float32), (24, 3, 3)).copy()
    out["betas"] = (
        np.zeros(10, np.float32) if betas is None else np.asarray(betas, np.float32).reshape(10)
    )
    out["has_smpl"] = np.float32(bool(has_smpl) and rotmats is not None and betas is not None)
    out["has_3d"] = np.float32(has_3d)
    if mesh is not None:
        body = mesh["body"]
        dense_affine = affine * (d / res)
        parts, uv, cont = render_dense(mesh["vertices"], mesh["K"], dense_affine, d, body, aug.flip)
        occ = mesh.get("occluder_mask")
        if occ is not None and occ.any():
            occ_d = cv2.warpAffine(
                occ.astype(np.uint8), camera.opencv_affine(dense_affine), (d, d),
                flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0,
            ).astype(bool)  # fmt: skip
            parts[occ_d] = 0
            uv[occ_d] = 0.0
            cont[occ_d] = 0.0
        out["iuv_index"] = parts.astype(np.int64)
        out["iuv_u"] = np.ascontiguousarray(uv[..., 0])
        out["iuv_v"] = np.ascontiguousarray(uv[..., 1])
        out["cont_uv"] = np.ascontiguousarray(cont.transpose(2, 0, 1))
        out["has_iuv"] = np.float32(1.0)
    else:
        out["iuv_index"] = np.zeros((d, d), np.int64)
        out["iuv_u"] = np.zeros((d, d), np.float32)
        out["iuv_v"] = np.zeros((d, d), np.float32)
        out["cont_uv"] = np.zeros((2, d, d), np.float32)
        out["has_iuv"] = np.float32(0.0)
    out["box"] = np.array([center[0], center[1], 200.0 * scale * aug.scale], np.float32)
    out["flip"] = np.float32(aug.flip)
    out["rot"] = np.float32(aug.rot)
    return out
