"""Shaded mesh overlay on a BGR video frame, plus 2D joints and skeleton (numba + OpenCV).

The mesh is rasterized (:mod:`~hmrt.runtime.render.raster`) only inside the bounding box of
its projection, shaded per pixel with Lambert diffuse plus Blinn-Phong specular from smoothly
interpolated vertex normals, and alpha-blended onto the frame where it covers; every other
pixel is left untouched. Lighting is in the camera frame (+X right, +Y down, +Z forward), two
sided (normals are turned towards the viewer). Joints are continuous pixel coordinates (pixel
centres at +0.5, see :mod:`hmrt.runtime.camera`); they are shifted by -0.5 for OpenCV.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from hmrt.runtime.errors import InputError
from hmrt.runtime.render._jit import kernel_input, njit
from hmrt.runtime.render.raster import rasterize

SMPL_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
"""Parent of each of the 24 SMPL joints (the kinematic tree used for skeleton drawing)."""

DEFAULT_COLOR = (200, 170, 130)
"""Base mesh colour, BGR (a light steel blue)."""

DEFAULT_LIGHT = (0.3, -0.5, -1.0)
"""Direction towards the light in the camera frame: in front of the person, up and right."""


@njit()
def _vertex_normals(verts, faces, out):
    out[:] = 0.0
    for f in range(faces.shape[0]):
        a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
        e1x, e1y, e1z = (
            verts[b, 0] - verts[a, 0],
            verts[b, 1] - verts[a, 1],
            verts[b, 2] - verts[a, 2],
        )
        e2x, e2y, e2z = (
            verts[c, 0] - verts[a, 0],
            verts[c, 1] - verts[a, 1],
            verts[c, 2] - verts[a, 2],
        )
        # The unnormalised cross product weights each face by its area.
        nx, ny, nz = e1y * e2z - e1z * e2y, e1z * e2x - e1x * e2z, e1x * e2y - e1y * e2x
        for v in (a, b, c):
            out[v, 0] += nx
            out[v, 1] += ny
            out[v, 2] += nz
    for v in range(out.shape[0]):
        n = math.sqrt(out[v, 0] ** 2 + out[v, 1] ** 2 + out[v, 2] ** 2)
        if n > 0.0:
            out[v, 0] /= n
            out[v, 1] /= n
            out[v, 2] /= n


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (V, 3) float32 (outward for counter-clockwise faces)."""
    out = np.empty((len(vertices), 3), dtype=np.float32)
    _vertex_normals(kernel_input(vertices, np.float32), kernel_input(faces, np.int32), out)
    return out


@njit()
def _shade(frame, x0, y0, fid, bary, faces, normals, K, color, light, ambient, spec, shine, alpha):
    lx, ly, lz = light[0], light[1], light[2]
    for i in range(fid.shape[0]):
        py = i + y0
        dy = (py + 0.5 - K[1, 2]) / K[1, 1]
        for j in range(fid.shape[1]):
            f = fid[i, j]
            if f < 0:
                continue
            px = j + x0
            dx = (px + 0.5 - K[0, 2] - K[0, 1] * dy) / K[0, 0]
            a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
            w0, w1, w2 = bary[i, j, 0], bary[i, j, 1], bary[i, j, 2]
            nx = w0 * normals[a, 0] + w1 * normals[b, 0] + w2 * normals[c, 0]
            ny = w0 * normals[a, 1] + w1 * normals[b, 1] + w2 * normals[c, 1]
            nz = w0 * normals[a, 2] + w1 * normals[b, 2] + w2 * normals[c, 2]
            # View vector: from the surface back to the camera centre.
            inv_v = 1.0 / math.sqrt(dx * dx + dy * dy + 1.0)
            vx, vy, vz = -dx * inv_v, -dy * inv_v, -inv_v
            nn = math.sqrt(nx * nx + ny * ny + nz * nz)
            if nn == 0.0:
                nx, ny, nz, nn = vx, vy, vz, 1.0
            if nx * vx + ny * vy + nz * vz < 0.0:
                nn = -nn
            nx, ny, nz = nx / nn, ny / nn, nz / nn
            diffuse = max(nx * lx + ny * ly + nz * lz, 0.0)
            hx, hy, hz = lx + vx, ly + vy, lz + vz
            hn = math.sqrt(hx * hx + hy * hy + hz * hz)
            highlight = 0.0
            if hn > 0.0:
                highlight = spec * max((nx * hx + ny * hy + nz * hz) / hn, 0.0) ** shine
            shade = ambient + (1.0 - ambient) * diffuse
            for ch in range(3):
                val = min(color[ch] * shade + 255.0 * highlight, 255.0)
                frame[py, px, ch] = np.uint8(alpha * val + (1.0 - alpha) * frame[py, px, ch] + 0.5)


def _window(vertices: np.ndarray, K: np.ndarray, height: int, width: int, near: float):
    """Pixel window that contains the mesh's projection (the whole frame if it crosses Z=near)."""
    z = vertices[:, 2]
    if len(z) == 0 or z.min() <= near:
        return 0, 0, width, height
    x = (K[0, 0] * vertices[:, 0] + K[0, 1] * vertices[:, 1]) / z + K[0, 2]
    y = K[1, 1] * vertices[:, 1] / z + K[1, 2]
    x0, x1 = max(int(np.floor(x.min())) - 1, 0), min(int(np.ceil(x.max())) + 1, width)
    y0, y1 = max(int(np.floor(y.min())) - 1, 0), min(int(np.ceil(y.max())) + 1, height)
    return x0, y0, max(x1, x0), max(y1, y0)


def render_overlay(
    frame: np.ndarray,
    vertices: np.ndarray,
    faces: np.ndarray,
    K: np.ndarray,
    color: tuple[float, float, float] = DEFAULT_COLOR,
    alpha: float = 0.85,
    light: tuple[float, float, float] = DEFAULT_LIGHT,
    ambient: float = 0.35,
    specular: float = 0.25,
    shininess: float = 24.0,
    joints2d: np.ndarray | None = None,
    parents: tuple[int, ...] | None = SMPL_PARENTS,
    out: np.ndarray | None = None,
    near: float = 1e-3,
) -> np.ndarray:
    """Draw a shaded mesh (camera-frame ``vertices`` (V, 3), intrinsics ``K``) over a BGR frame.

    Returns ``out`` (a copy of ``frame`` unless given; pass ``out=frame`` to draw in place).
    ``color`` is BGR 0..255, ``alpha`` the mesh opacity. ``joints2d`` (J, 2) pixels, if given,
    are drawn after the mesh, with bones to ``parents`` (``None``: joints only).
    """
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise InputError(
            f"frame must be a BGR uint8 (H, W, 3) array, got {frame.dtype} {frame.shape}"
        )
    out = frame.copy() if out is None else out
    height, width = frame.shape[:2]
    if not (out.flags.writeable and out.shape == frame.shape and out.dtype == np.uint8):
        raise InputError(f"out must be a writeable uint8 array of shape {frame.shape}")
    # The shader draws into a C-contiguous image (one kernel specialisation, see warmup()); a
    # strided ``out`` gets the pixels copied back.
    canvas = out if out.flags.c_contiguous else np.ascontiguousarray(out)
    verts = kernel_input(vertices, np.float64)
    Kf = kernel_input(K, np.float64)
    x0, y0, x1, y1 = _window(verts, Kf, height, width, near)
    if x1 > x0 and y1 > y0:
        # Rendering the window with a shifted principal point samples the same pixel centres.
        Kw = Kf.copy()
        Kw[0, 2] -= x0
        Kw[1, 2] -= y0
        raster = rasterize(verts, faces, Kw, y1 - y0, x1 - x0, near=near)
        normals = vertex_normals(verts, faces)
        lvec = np.asarray(light, dtype=np.float64)
        lvec = kernel_input(lvec / np.linalg.norm(lvec), np.float64)
        _shade(
            canvas, int(x0), int(y0), raster.face_id, raster.bary, kernel_input(faces, np.int32),
            normals, Kf, kernel_input(color, np.float64), lvec, float(ambient),
            float(specular), float(shininess), float(alpha),
        )  # fmt: skip
        if canvas is not out:
            out[...] = canvas
    if joints2d is not None:
        draw_skeleton(out, joints2d, parents)
    return out


def warmup() -> None:
    """Compile :func:`render_overlay`'s kernels (or load them from numba's cache) now.

    Call it before a timed loop: on a fresh install numba compiles the rasterizer and shader on
    the first frame it draws (seconds), which a timed loop would count as frames per second.
    One triangle in a 16x16 frame suffices: kernels see their arguments in one canonical form
    (``kernel_input``), so every real frame reuses what this compiled; with numba's on-disk
    cache a later process only loads it (milliseconds).
    """
    tri = np.array([[-0.1, -0.1, 2.0], [0.1, -0.1, 2.0], [0.0, 0.1, 2.0]])
    K = np.array([[16.0, 0.0, 8.0], [0.0, 16.0, 8.0], [0.0, 0.0, 1.0]])
    render_overlay(np.zeros((16, 16, 3), np.uint8), tri, np.array([[0, 1, 2]]), K)


def draw_skeleton(
    frame: np.ndarray,
    joints2d: np.ndarray,
    parents: tuple[int, ...] | None = SMPL_PARENTS,
    color: tuple[int, int, int] = (60, 220, 60),
    joint_color: tuple[int, int, int] = (40, 40, 230),
    radius: int = 3,
    thickness: int = 2,
) -> np.ndarray:
    """Draw joints (J, 2) in continuous pixels and bones to ``parents`` onto ``frame`` in place."""
    if parents is not None and len(parents) != len(joints2d):
        raise InputError(f"got {len(joints2d)} joints but {len(parents)} skeleton parents")
    shift = 4  # OpenCV fixed-point sub-pixel bits
    pts = np.rint((np.asarray(joints2d, dtype=np.float64) - 0.5) * (1 << shift))
    ok = np.all(np.isfinite(pts), axis=1) & np.all(np.abs(pts) < 2**30, axis=1)
    pts = np.where(ok[:, None], pts, 0).astype(np.int64)
    if parents is not None:
        for j, p in enumerate(parents):
            if p >= 0 and ok[j] and ok[p]:
                cv2.line(frame, tuple(pts[p]), tuple(pts[j]), color, thickness, cv2.LINE_AA, shift)
    for j in range(len(pts)):
        if ok[j]:
            cv2.circle(frame, tuple(pts[j]), radius << shift, joint_color, -1, cv2.LINE_AA, shift)
    return frame
