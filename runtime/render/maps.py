"""Dense maps from a :class:`~hmrt.runtime.render.raster.Raster`: masks, parts, IUV, UV tables.

All maps are point samples at pixel centres of the raster (no anti-aliasing). To render maps
smaller than the image they describe (DaNet's 56x56 IUV for a 224x224 crop), rasterize with
``camera.scale_intrinsics(K, 56 / 224)`` at 56x56: the same view, exactly, at lower density.

DensePose IUV (body keys ``dp_I`` (F,) part 1..24 and ``dp_uv`` (F, 3, 2) per-corner U, V):
    ``I`` uint8 (..., H, W): 0 = background, else the part of the visible face;
    ``uv`` float32 (..., H, W, 2): U, V in [0, 1] interpolated with the barycentrics (0 on
    background). Corner values are per face, so nothing is blended across part borders.
    The 3-channel IUV *image* (DaNet's encoding) is ``(I / 24, U, V)`` float32 (..., H, W, 3);
    the one-hot form is 25 index channels plus 25 U and 25 V channels, channels first.

Continuous UV (``cont_vt`` (T, 2), ``cont_ft`` (F, 3)): ``(foreground, u, v)`` per pixel,
DecoMR's IUV image. UV-space tables (:func:`uv_raster`) rasterize the mesh in its UV chart:
texel ``[i, j]`` of an ``S x S`` map is centred at ``u = (j + 0.5) / S``, ``v = 1 - (i + 0.5)
/ S`` (row 0 is the top, v = 1, like a texture image); as ``grid_sample`` coordinates
(``align_corners=False``) that is ``x = 2u - 1``, ``y = 1 - 2v``.
"""

from __future__ import annotations

import numpy as np

from hmrt.runtime.errors import InputError
from hmrt.runtime.render._jit import kernel_input, njit
from hmrt.runtime.render.raster import Raster, rasterize

NUM_PARTS = 24
"""DensePose part count; index 0 is the background."""


@njit()
def _interp_corners(fid, bary, corners, out):
    for p in range(fid.shape[0]):
        f = fid[p]
        if f < 0:
            out[p, :] = 0.0
            continue
        for c in range(corners.shape[2]):
            out[p, c] = (
                bary[p, 0] * corners[f, 0, c]
                + bary[p, 1] * corners[f, 1, c]
                + bary[p, 2] * corners[f, 2, c]
            )


@njit()
def _interp_vertices(fid, bary, faces, values, out):
    for p in range(fid.shape[0]):
        f = fid[p]
        if f < 0:
            out[p, :] = 0.0
            continue
        a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
        for k in range(values.shape[1]):
            out[p, k] = (
                bary[p, 0] * values[a, k] + bary[p, 1] * values[b, k] + bary[p, 2] * values[c, k]
            )


@njit()
def _iuv_kernel(fid, bary, part, corner_uv, index, uv):
    for p in range(fid.shape[0]):
        f = fid[p]
        if f < 0:
            index[p] = 0
            uv[p, 0] = uv[p, 1] = 0.0
            continue
        index[p] = part[f]
        for c in range(2):
            uv[p, c] = (
                bary[p, 0] * corner_uv[f, 0, c]
                + bary[p, 1] * corner_uv[f, 1, c]
                + bary[p, 2] * corner_uv[f, 2, c]
            )


# Kernels write every output element (zeros on background) so outputs come from np.empty:
# calloc'ed zero pages fault on first write, which made batched maps markedly slower.


def _flat(face_id: np.ndarray, bary: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    fid = kernel_input(face_id, np.int32).reshape(-1)
    b = kernel_input(bary, np.float32).reshape(-1, 3)
    if b.shape[0] != fid.shape[0]:
        raise InputError(f"bary {bary.shape} does not match face_id {face_id.shape}")
    return fid, b


def silhouette(face_id: np.ndarray) -> np.ndarray:
    """Foreground mask (bool, same shape as ``face_id``)."""
    return np.asarray(face_id) >= 0


def part_map(face_id: np.ndarray, dp_I: np.ndarray) -> np.ndarray:
    """24-part segmentation: uint8 part index 1..24 of each pixel's face, 0 on background."""
    fid = np.asarray(face_id)
    table = np.concatenate([np.asarray(dp_I, dtype=np.uint8), np.zeros(1, np.uint8)])
    return table[np.where(fid >= 0, fid, len(table) - 1)]


def interpolate_corners(face_id: np.ndarray, bary: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Per-face-corner attributes ``(F, 3, C)`` -> ``(..., H, W, C)`` float32, 0 on background."""
    fid, b = _flat(face_id, bary)
    c = kernel_input(corners, np.float32)
    out = np.empty((fid.shape[0], c.shape[2]), dtype=np.float32)
    _interp_corners(fid, b, c, out)
    return out.reshape(*np.shape(face_id), c.shape[2])


def interpolate_vertices(
    face_id: np.ndarray, bary: np.ndarray, faces: np.ndarray, values: np.ndarray
) -> np.ndarray:
    """Per-vertex attributes ``(V, C)`` -> ``(..., H, W, C)`` float32, 0 on background."""
    fid, b = _flat(face_id, bary)
    vals = kernel_input(values, np.float32)
    vals2 = vals.reshape(vals.shape[0], -1)
    out = np.empty((fid.shape[0], vals2.shape[1]), dtype=np.float32)
    _interp_vertices(fid, b, kernel_input(faces, np.int32), vals2, out)
    return out.reshape(*np.shape(face_id), *vals.shape[1:])


def iuv(raster: Raster, dp_I: np.ndarray, dp_uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DensePose IUV of a raster: ``I`` uint8 (..., H, W) and ``uv`` float32 (..., H, W, 2)."""
    fid, b = _flat(raster.face_id, raster.bary)
    part = kernel_input(dp_I, np.uint8)
    corner_uv = kernel_input(dp_uv, np.float32)
    if corner_uv.shape != (part.shape[0], 3, 2):
        raise InputError(f"dp_uv must be (F, 3, 2) for F = {part.shape[0]}, got {corner_uv.shape}")
    index = np.empty(fid.shape[0], dtype=np.uint8)
    uv = np.empty((fid.shape[0], 2), dtype=np.float32)
    _iuv_kernel(fid, b, part, corner_uv, index, uv)
    shape = raster.face_id.shape
    return index.reshape(shape), uv.reshape(*shape, 2)


def iuv_image(index: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """3-channel IUV image ``(I / 24, U, V)`` float32 (..., H, W, 3) (DaNet's encoding)."""
    out = np.empty((*index.shape, 3), dtype=np.float32)
    out[..., 0] = index.astype(np.float32) / NUM_PARTS
    out[..., 1:] = uv
    return out


def iuv_from_image(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Decode an IUV image back to ``I`` uint8 (rounded) and ``uv`` float32."""
    img = np.asarray(image, dtype=np.float32)
    index = np.clip(np.rint(img[..., 0] * NUM_PARTS), 0, NUM_PARTS).astype(np.uint8)
    return index, np.ascontiguousarray(img[..., 1:])


def iuv_one_hot(index: np.ndarray, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-hot IUV, channels first: index, U, V maps, each float32 (..., 25, H, W).

    Channel ``k`` of U / V holds the part-``k`` coordinates where ``I == k``, else 0 (the
    form of DaNet's IUV heads: 25-way part classification and per-part UV regression).
    """
    hot = (index[..., None, :, :] == np.arange(NUM_PARTS + 1)[:, None, None]).astype(np.float32)
    u = hot * uv[..., None, :, :, 0]
    v = hot * uv[..., None, :, :, 1]
    return hot, u, v


def continuous_iuv(raster: Raster, cont_vt: np.ndarray, cont_ft: np.ndarray) -> np.ndarray:
    """Continuous-UV IUV image ``(foreground, u, v)`` float32 (..., H, W, 3) (DecoMR)."""
    corners = np.asarray(cont_vt, dtype=np.float32)[np.asarray(cont_ft)]
    out = np.empty((*raster.face_id.shape, 3), dtype=np.float32)
    out[..., 0] = raster.face_id >= 0
    out[..., 1:] = interpolate_corners(raster.face_id, raster.bary, corners)
    return out


def render_iuv(
    vertices: np.ndarray,
    faces: np.ndarray,
    K: np.ndarray,
    height: int,
    width: int,
    dp_I: np.ndarray,
    dp_uv: np.ndarray,
    cull_back: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Rasterize camera-frame vertices (V, 3) or (N, V, 3) and return DensePose ``(I, uv)``."""
    return iuv(rasterize(vertices, faces, K, height, width, cull_back=cull_back), dp_I, dp_uv)


def uv_raster(uv_coords: np.ndarray, uv_faces: np.ndarray, size: int) -> Raster:
    """Rasterize the mesh in its UV chart: which face and barycentrics cover each texel.

    ``uv_coords`` (T, 2) in [0, 1] and ``uv_faces`` (F, 3) (e.g. ``cont_vt``, ``cont_ft``),
    face ``k`` being mesh face ``k``. Returns a ``size x size`` :class:`Raster` (depth 1 on
    covered texels); compute it once per body and reuse it with :func:`location_map`.
    """
    uv = np.asarray(uv_coords, dtype=np.float64)
    flat = np.stack([uv[:, 0] * size, (1.0 - uv[:, 1]) * size, np.ones(len(uv))], axis=1)
    # An identity camera at Z = 1 is an orthographic view of the chart; barycentrics are then
    # plain affine ones. Overlapping chart regions resolve to the lowest face index.
    return rasterize(flat, uv_faces, np.eye(3), size, size)


def location_map(table: Raster, faces: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """DecoMR location map: posed ``vertices`` (V, 3) or (N, V, 3) -> (..., S, S, 3) float32.

    Each texel covered by the UV chart holds the 3D point at its barycentrics on the mesh
    face from :func:`uv_raster`; uncovered texels are 0.
    """
    verts = np.asarray(vertices, dtype=np.float32)
    if verts.ndim == 2:
        return interpolate_vertices(table.face_id, table.bary, faces, verts)
    # Batch: put the batch into channels so the table is walked once.
    n = verts.shape[0]
    stacked = np.ascontiguousarray(verts.transpose(1, 0, 2)).reshape(verts.shape[1], n * 3)
    out = interpolate_vertices(table.face_id, table.bary, faces, stacked)
    return np.moveaxis(out.reshape(*table.face_id.shape, n, 3), -2, 0)
