"""Camera conventions shared by the runtime, the renderer and the data engine (numpy only).

Pixel coordinates (everywhere in hmrt)
    Continuous image coordinates ``(x, y)``: x to the right, y down, origin at the *outer
    top-left corner* of the image. Pixel ``[row i, column j]`` covers ``[j, j+1) x [i, i+1)``
    and its centre is ``(j + 0.5, i + 0.5)``. The image spans ``[0, W] x [0, H]``, so the
    principal point of a centred camera is ``(W/2, H/2)``, resizing an image by a factor ``k``
    maps ``x -> k * x`` exactly (:func:`scale_intrinsics`), and the normalised crop
    coordinate ``x_n = 2 * x / res - 1`` is ``-1`` / ``+1`` at the crop's outer edges (the
    ``align_corners=False`` convention of ``grid_sample``). OpenCV's drawing and warping
    functions put pixel centres at integers: subtract 0.5 before drawing, and pass affine
    matrices through :func:`opencv_affine` before ``cv2.warpAffine``.

Camera frame
    OpenCV / SMPL-render convention: +X right, +Y down, +Z forward into the scene; a point
    ``P`` projects to ``K @ P / P_z``. Body meshes (SMPL frame: Y up, facing +Z) are turned
    to face the camera by the model's global orientation; hmrt does not flip axes silently.

Weak perspective (HMR / SPIN / DaNet ``cam = (s, tx, ty)``)
    For root-relative 3D points ``X``: ``x_n = s * (X + tx)``, ``y_n = s * (Y + ty)`` in the
    normalised coordinates of a square crop of side ``res``. The equivalent perspective
    camera has focal ``f_crop`` (default 5000 px), principal point at the crop centre and
    translation ``t = (tx, ty, 2 f_crop / (res s))`` (:func:`weak_to_translation`).

Crop boxes
    A crop box is ``(cx, cy, side)`` in full-image continuous pixels: a square of that side
    centred on ``(cx, cy)``, resampled to ``res x res``. :func:`box_from_bbox` builds one from
    a detector box; :func:`crop_matrix` is the 2x3 affine from image to crop coordinates.
    :func:`crop_to_full_translation` turns the crop's weak-perspective camera into a
    translation for the full-image intrinsics (CLIFF), which the runtime reports.

Shapes: functions accept a single item or any leading batch dimensions (``(..., 3)`` cams,
``(..., P, 3)`` points, ``(3, 3)`` or ``(..., 3, 3)`` intrinsics) and broadcast them.
"""

from __future__ import annotations

import numpy as np

CROP_FOCAL = 5000.0
"""Focal length in pixels of the crop's perspective camera (SPIN/DaNet); ONNX ``hmrt.crop_focal``."""


def intrinsics(fx: float, fy: float | None = None, cx: float = 0.0, cy: float = 0.0) -> np.ndarray:
    """Pinhole intrinsics ``K`` (3, 3) float64; ``fy`` defaults to ``fx`` (square pixels)."""
    fy = fx if fy is None else fy
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=np.float64)


def default_intrinsics(width: int, height: int) -> np.ndarray:
    """Intrinsics to assume for an uncalibrated camera: focal = image diagonal, centred.

    The diagonal focal (about 53 degrees diagonal field of view) is CLIFF's default for
    in-the-wild images; the principal point is the image centre ``(W/2, H/2)``.
    """
    focal = float(np.hypot(width, height))
    return intrinsics(focal, focal, width / 2.0, height / 2.0)


def crop_intrinsics(res: int, focal: float = CROP_FOCAL) -> np.ndarray:
    """Intrinsics of the perspective camera equivalent to a crop's weak-perspective camera."""
    return intrinsics(focal, focal, res / 2.0, res / 2.0)


def scale_intrinsics(K: np.ndarray, factor: float) -> np.ndarray:
    """Intrinsics for the same view rendered ``factor`` times larger (e.g. 0.25: 224 -> 56).

    Exact in hmrt's pixel convention (image edges at 0 and W): rows 0 and 1 scale, row 2 stays.
    """
    K = np.array(K, dtype=np.float64, copy=True)
    K[..., :2, :] *= factor
    return K


def project(points: np.ndarray, K: np.ndarray, translation: np.ndarray | None = None) -> np.ndarray:
    """Perspective projection ``(..., P, 3)`` camera-frame points -> ``(..., P, 2)`` pixels.

    ``translation`` ``(..., 3)`` is added to every point first (a root-relative body plus its
    camera translation). Points at or behind ``Z = 0`` give inf/nan; callers clip them.
    """
    p = np.asarray(points, dtype=np.float64)
    if translation is not None:
        p = p + np.asarray(translation, dtype=np.float64)[..., None, :]
    K = np.asarray(K, dtype=np.float64)
    uvw = np.einsum("...ij,...pj->...pi", K, p)
    with np.errstate(divide="ignore", invalid="ignore"):
        return uvw[..., :2] / uvw[..., 2:3]


def project_weak(points: np.ndarray, cam: np.ndarray, res: int) -> np.ndarray:
    """Weak-perspective projection of root-relative ``(..., P, 3)`` points to crop pixels."""
    p = np.asarray(points, dtype=np.float64)
    cam = np.asarray(cam, dtype=np.float64)
    s, t = cam[..., None, 0:1], cam[..., None, 1:3]
    xn = s * (p[..., :2] + t)
    return (xn + 1.0) * (res / 2.0)


def weak_to_translation(cam: np.ndarray, res: int, focal: float = CROP_FOCAL) -> np.ndarray:
    """Crop weak-perspective ``(s, tx, ty)`` -> perspective translation ``(tx, ty, tz)``.

    ``tz = 2 focal / (res s)``, so that a point at depth ``tz`` projects with the same scale
    through :func:`crop_intrinsics`. ``s`` is clamped away from 0 (a degenerate camera).
    """
    cam = np.asarray(cam, dtype=np.float64)
    s = np.maximum(cam[..., 0], 1e-9)
    return np.stack([cam[..., 1], cam[..., 2], 2.0 * focal / (res * s)], axis=-1)


def translation_to_weak(t: np.ndarray, res: int, focal: float = CROP_FOCAL) -> np.ndarray:
    """Inverse of :func:`weak_to_translation`: ``s = 2 focal / (res tz)``."""
    t = np.asarray(t, dtype=np.float64)
    return np.stack([2.0 * focal / (res * t[..., 2]), t[..., 0], t[..., 1]], axis=-1)


def box_from_bbox(bbox_xyxy: np.ndarray, scale: float = 1.2) -> np.ndarray:
    """Square crop box ``(cx, cy, side)`` around a detector box ``(x0, y0, x1, y1)``.

    The side is ``scale * max(w, h)``, centred on the box centre (SPIN/DaNet use 1.2).
    """
    b = np.asarray(bbox_xyxy, dtype=np.float64)
    w, h = b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]
    return np.stack(
        [(b[..., 0] + b[..., 2]) / 2, (b[..., 1] + b[..., 3]) / 2, scale * np.maximum(w, h)],
        axis=-1,
    )


def box_to_xyxy(box: np.ndarray) -> np.ndarray:
    """Crop box ``(cx, cy, side)`` -> its corners ``(x0, y0, x1, y1)`` in image pixels."""
    b = np.asarray(box, dtype=np.float64)
    half = b[..., 2] / 2
    return np.stack([b[..., 0] - half, b[..., 1] - half, b[..., 0] + half, b[..., 1] + half], -1)


def crop_matrix(box: np.ndarray, res: int, rot: float | np.ndarray = 0.0) -> np.ndarray:
    """Affine ``(..., 2, 3)`` from full-image to crop continuous pixel coordinates.

    ``x_crop = res/2 + (res/side) R(rot) (x - c)``. ``rot`` in degrees rotates the content
    counter-clockwise as seen on screen (data augmentation); the runtime uses ``rot = 0``.
    For ``cv2.warpAffine`` pass ``opencv_affine(crop_matrix(box, res))`` as the matrix.
    """
    b = np.asarray(box, dtype=np.float64)
    a = res / b[..., 2]
    th = np.deg2rad(np.asarray(rot, dtype=np.float64))
    c, s = np.cos(th) * a, np.sin(th) * a
    c, s = np.broadcast_arrays(c, s)
    # y points down, so an on-screen counter-clockwise rotation is [[c, s], [-s, c]].
    m = np.empty((*np.broadcast_shapes(c.shape, b.shape[:-1]), 2, 3))
    m[..., 0, 0], m[..., 0, 1] = c, s
    m[..., 1, 0], m[..., 1, 1] = -s, c
    m[..., 0, 2] = res / 2 - (c * b[..., 0] + s * b[..., 1])
    m[..., 1, 2] = res / 2 - (-s * b[..., 0] + c * b[..., 1])
    return m


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of a ``(..., 2, 3)`` affine (crop -> image from :func:`crop_matrix`)."""
    m = np.asarray(m, dtype=np.float64)
    a_inv = np.linalg.inv(m[..., :2])
    return np.concatenate([a_inv, -(a_inv @ m[..., 2:])], axis=-1)


def apply_affine(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply ``(..., 2, 3)`` affines to ``(..., P, 2)`` points."""
    m = np.asarray(m, dtype=np.float64)
    p = np.asarray(points, dtype=np.float64)
    return np.einsum("...ij,...pj->...pi", m[..., :2], p) + m[..., None, :, 2]


def opencv_affine(m: np.ndarray) -> np.ndarray:
    """Convert an hmrt affine (pixel centres at +0.5) to OpenCV's (centres at integers).

    ``cv2.warpAffine(frame, opencv_affine(crop_matrix(box, res)), (res, res))`` samples
    the crop so that crop pixel centres land exactly where :func:`crop_matrix` says.
    """
    m = np.array(m, dtype=np.float64, copy=True)
    m[..., 2] += m[..., :2].sum(axis=-1) * 0.5 - 0.5
    return m


def image_to_crop(points: np.ndarray, box: np.ndarray, res: int) -> np.ndarray:
    """Full-image pixels ``(..., P, 2)`` -> crop pixels for an unrotated crop box."""
    return apply_affine(crop_matrix(box, res), points)


def crop_to_image(points: np.ndarray, box: np.ndarray, res: int) -> np.ndarray:
    """Crop pixels ``(..., P, 2)`` -> full-image pixels for an unrotated crop box."""
    return apply_affine(invert_affine(crop_matrix(box, res)), points)


def crop_to_full_translation(cam: np.ndarray, box: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Crop weak-perspective ``(s, tx, ty)`` -> translation for the full image's ``K`` (CLIFF).

    Derivation. In the crop, a root-relative point ``X`` lands at normalised ``x_n = s (X +
    tx)``, i.e. at full-image pixel ``u = bx + (b/2) s (X + tx)`` for the box centre ``bx``
    and side ``b``. The full camera sees the body at translation ``T``; for a body that is
    thin compared with ``Tz`` (the weak-perspective assumption) ``u ~ fx (X + Tx) / Tz + cx``.
    Equating the coefficient of ``X`` gives ``Tz = 2 fx / (b s)``; equating the constants
    gives ``Tx = tx + (bx - cx) Tz / fx = tx + 2 (bx - cx) / (b s)``, and likewise
    ``Ty = ty + 2 (by - cy) / (b s)`` with ``fy``. With ``fx != fy`` the depth uses the
    geometric mean ``sqrt(fx fy)``. Points at ``Z = 0`` (root depth) project exactly the same
    through both cameras; others differ by true perspective, which the crop camera ignores.

    ``cam`` (..., 3), ``box`` (..., 3) as ``(cx, cy, side)``, ``K`` (3, 3) or (..., 3, 3).
    Returns ``(..., 3)`` metres.
    """
    cam = np.asarray(cam, dtype=np.float64)
    box = np.asarray(box, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    fx, fy, px, py = K[..., 0, 0], K[..., 1, 1], K[..., 0, 2], K[..., 1, 2]
    bs = box[..., 2] * np.maximum(cam[..., 0], 1e-9)
    tz = 2.0 * np.sqrt(fx * fy) / bs
    tx = cam[..., 1] + (box[..., 0] - px) * tz / fx
    ty = cam[..., 2] + (box[..., 1] - py) * tz / fy
    return np.stack(np.broadcast_arrays(tx, ty, tz), axis=-1)


def full_to_crop_cam(t: np.ndarray, box: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Inverse of :func:`crop_to_full_translation`: ground-truth crop cam from a full ``T``."""
    t = np.asarray(t, dtype=np.float64)
    box = np.asarray(box, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    fx, fy, px, py = K[..., 0, 0], K[..., 1, 1], K[..., 0, 2], K[..., 1, 2]
    s = 2.0 * np.sqrt(fx * fy) / (box[..., 2] * t[..., 2])
    tx = t[..., 0] - (box[..., 0] - px) * t[..., 2] / fx
    ty = t[..., 1] - (box[..., 1] - py) * t[..., 2] / fy
    return np.stack(np.broadcast_arrays(s, tx, ty), axis=-1)


def fit_weak_perspective(
    points3d: np.ndarray, points2d: np.ndarray, res: int, weights: np.ndarray | None = None
) -> np.ndarray:
    """Least-squares weak-perspective ``(s, tx, ty)`` mapping 3D points onto crop pixels.

    Minimises ``sum w ||s (X_xy + t) - x_n||^2`` over the points, which is linear in
    ``(s, s tx, s ty)``. ``points3d`` (..., P, 3) root-relative, ``points2d`` (..., P, 2) crop
    pixels, ``weights`` (..., P) e.g. joint visibility (0 drops a point). Needs 2 points
    with weight > 0 that are not coincident in X/Y; otherwise returns ``s = 0``.
    """
    X = np.asarray(points3d, dtype=np.float64)[..., :2]
    xn = np.asarray(points2d, dtype=np.float64) * (2.0 / res) - 1.0
    w = np.ones(X.shape[:-1]) if weights is None else np.asarray(weights, dtype=np.float64)
    w = np.broadcast_to(w, X.shape[:-1])[..., None]
    sw = np.maximum(w.sum(axis=-2), 1e-12)  # (..., 1)
    Xm, xm = (w * X).sum(-2) / sw, (w * xn).sum(-2) / sw  # (..., 2)
    # Closed form: centre both sets, then s = <X', x'> / <X', X'> and a = x_mean - s X_mean.
    Xc, xc = X - Xm[..., None, :], xn - xm[..., None, :]
    num = (w * Xc * xc).sum(axis=(-2, -1))
    den = (w * Xc * Xc).sum(axis=(-2, -1))
    s = np.where(den > 1e-12, num / np.maximum(den, 1e-12), 0.0)
    safe = np.where(np.abs(s) > 1e-12, s, 1.0)
    t = np.where(np.abs(s)[..., None] > 1e-12, xm / safe[..., None] - Xm, 0.0)
    return np.concatenate([s[..., None], t], axis=-1)


def fit_translation(
    points3d: np.ndarray, points2d: np.ndarray, K: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """Least-squares translation ``T`` so that ``project(X + T, K)`` matches pixel targets.

    Linear in ``T`` after multiplying out the depth: ``fx (X + Tx) + (cx - u)(Z + Tz) = 0``
    (and the same in y), solved per batch item. ``points3d`` (..., P, 3), ``points2d``
    (..., P, 2), ``K`` (3, 3), ``weights`` (..., P). Used to make ground-truth cameras.
    """
    X = np.asarray(points3d, dtype=np.float64)
    uv = np.asarray(points2d, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    w = np.ones(X.shape[:-1]) if weights is None else np.asarray(weights, dtype=np.float64)
    w = np.sqrt(np.broadcast_to(w, X.shape[:-1]))
    du, dv = cx - uv[..., 0], cy - uv[..., 1]
    zeros = np.zeros_like(du)
    # rows: [fx, 0, cx - u] T = -(fx X + (cx - u) Z), and the same for y.
    ax = np.stack([np.full_like(du, fx), zeros, du], axis=-1)
    ay = np.stack([zeros, np.full_like(dv, fy), dv], axis=-1)
    bx = -(fx * X[..., 0] + du * X[..., 2])
    by = -(fy * X[..., 1] + dv * X[..., 2])
    A = np.concatenate([ax * w[..., None], ay * w[..., None]], axis=-2)
    b = np.concatenate([bx * w, by * w], axis=-1)
    ata = np.einsum("...pi,...pj->...ij", A, A)
    atb = np.einsum("...pi,...p->...i", A, b)
    return np.linalg.solve(ata, atb[..., None])[..., 0]
