"""Rasterizer, maps and overlay against an independent brute-force ray caster (numpy)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from hmrt.assets import asset_path
from hmrt.runtime import camera
from hmrt.runtime.errors import InputError
from hmrt.runtime.render import (
    continuous_iuv,
    draw_skeleton,
    interpolate_vertices,
    iuv,
    iuv_from_image,
    iuv_image,
    iuv_one_hot,
    location_map,
    part_map,
    rasterize,
    render_iuv,
    render_overlay,
    silhouette,
    uv_raster,
    vertex_normals,
)
from hmrt.runtime.render._jit import njit

# ---------------------------------------------------------------- reference and test meshes


def ray_cast_pixels(verts, faces, K, pixels):
    """Closest hit of the rays through ``pixels`` (P, 2) over all triangles (Moller-Trumbore)."""
    rays = np.concatenate([pixels, np.ones((len(pixels), 1))], 1) @ np.linalg.inv(K).T
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    e1, e2 = b - a, c - a
    n = len(rays)
    fid, bary, depth = np.full(n, -1), np.zeros((n, 3)), np.zeros(n)
    for s in range(0, n, 64):
        d = rays[s : s + 64, None, :]  # unit Z component, so t is the depth
        p = np.cross(d, e2[None])
        det = (e1[None] * p).sum(-1)
        with np.errstate(all="ignore"):
            inv = 1.0 / det
            tv = -a[None]
            u = (tv * p).sum(-1) * inv
            q = np.cross(tv, e1[None])
            v = (d * q).sum(-1) * inv
            t = (e2[None] * q).sum(-1) * inv
        hit = (np.abs(det) > 1e-14) & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0)
        t = np.where(hit, t, np.inf)
        k = t.argmin(axis=1)
        r = np.arange(len(k))
        any_hit = np.isfinite(t[r, k])
        fid[s : s + 64] = np.where(any_hit, k, -1)
        bary[s : s + 64] = np.where(
            any_hit[:, None], np.stack([1 - u[r, k] - v[r, k], u[r, k], v[r, k]], 1), 0.0
        )
        depth[s : s + 64] = np.where(any_hit, t[r, k], 0.0)
    return fid, bary, depth


def ray_cast(verts, faces, K, height, width):
    """Ray-cast image: pixel [i, j] is sampled at its centre (j + 0.5, i + 0.5)."""
    jj, ii = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    fid, bary, depth = ray_cast_pixels(verts, faces, K, np.stack([jj.ravel(), ii.ravel()], 1))
    return fid.reshape(height, width), bary.reshape(height, width, 3), depth.reshape(height, width)


def icosphere(subdiv: int = 2):
    """Unit icosphere, faces counter-clockwise seen from outside (320 faces at subdiv 2)."""
    g = (1 + 5**0.5) / 2
    v = [(-1, g, 0), (1, g, 0), (-1, -g, 0), (1, -g, 0), (0, -1, g), (0, 1, g), (0, -1, -g),
         (0, 1, -g), (g, 0, -1), (g, 0, 1), (-g, 0, -1), (-g, 0, 1)]  # fmt: skip
    f = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4),
         (11, 10, 2), (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8),
         (3, 8, 9), (4, 9, 5), (2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1)]  # fmt: skip
    verts = [np.array(p, float) / np.linalg.norm(p) for p in v]
    faces = f
    for _ in range(subdiv):
        mids: dict[tuple[int, int], int] = {}

        def mid(i, j, mids=mids):
            key = (min(i, j), max(i, j))
            if key not in mids:
                m = verts[i] + verts[j]
                verts.append(m / np.linalg.norm(m))
                mids[key] = len(verts) - 1
            return mids[key]

        new = []
        for a, b, c in faces:
            ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
            new += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = new
    return np.array(verts), np.array(faces, dtype=np.int32)


def body_like_mesh():
    """Overlapping ellipsoids: torso, head, arms, legs (a few hundred faces)."""
    sv, sf = icosphere(1)
    parts = [  # centre, radii (metres, camera frame: Y down)
        ((0.0, -0.1, 0.0), (0.17, 0.3, 0.11)),
        ((0.0, -0.55, 0.0), (0.1, 0.12, 0.1)),
        ((-0.3, -0.2, 0.02), (0.06, 0.28, 0.06)),
        ((0.3, -0.15, -0.05), (0.06, 0.28, 0.06)),
        ((-0.1, 0.5, 0.0), (0.08, 0.4, 0.08)),
        ((0.1, 0.5, 0.05), (0.08, 0.4, 0.08)),
    ]
    verts, faces = [], []
    for centre, radii in parts:
        faces.append(sf + sum(len(x) for x in verts))
        verts.append(sv * radii + centre)
    return np.concatenate(verts), np.concatenate(faces)


def sphere_and_triangles():
    rng = np.random.default_rng(0)
    sv, sf = icosphere(2)
    centres = rng.uniform(-1, 1, (80, 3)) * [1.2, 1.2, 1.0]
    tris = centres[:, None, :] + rng.normal(0, 0.5, (80, 3, 3))
    verts = np.concatenate([sv, tris.reshape(-1, 3)]) + np.array([0.1, 0.2, 4.0])
    faces = np.concatenate([sf, len(sv) + np.arange(240, dtype=np.int32).reshape(80, 3)])
    return verts, faces


def assert_matches_ray_casting(verts, faces, K, height, width, min_agreement=0.999):
    r = rasterize(verts, faces, K, height, width)
    fid, bary, depth = ray_cast(verts, faces, K, height, width)
    covered = (fid >= 0) | (r.face_id >= 0)
    assert covered.sum() > 0.1 * height * width
    agree = (r.face_id == fid)[covered].mean()
    assert agree >= min_agreement, agree
    same = (r.face_id == fid) & (fid >= 0)
    np.testing.assert_allclose(r.bary[same], bary[same], atol=2e-5)
    np.testing.assert_allclose(r.depth[same], depth[same], rtol=1e-5)
    np.testing.assert_allclose(r.bary[same].sum(-1), 1.0, atol=1e-6)
    assert np.all(r.depth[fid < 0] == 0) and np.all(r.bary[r.face_id < 0] == 0)
    return r


# ---------------------------------------------------------------- rasterizer


def test_sphere_and_random_triangles_match_ray_casting():
    verts, faces = sphere_and_triangles()
    K = camera.intrinsics(40.0, 42.0, 32.3, 31.7)
    r = assert_matches_ray_casting(verts, faces, K, 64, 64)
    assert (
        r.face_id.dtype == np.int32 and r.bary.dtype == np.float32 and r.depth.dtype == np.float32
    )


def test_body_like_mesh_matches_ray_casting_with_skewed_intrinsics():
    verts, faces = body_like_mesh()
    K = np.array([[90.0, 0.8, 36.0], [0.0, 88.0, 40.0], [0.0, 0.0, 1.0]])
    assert_matches_ray_casting(verts + np.array([0.02, 0.0, 2.2]), faces, K, 80, 72)


def test_near_plane_clipping_matches_ray_casting():
    # Camera inside a closed box: every face crosses or touches Z = 0, every pixel is covered.
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    faces = np.array([t for a, b, c, d in quads for t in ((a, b, c), (a, c, d))], dtype=np.int32)
    verts = corners * [1.0, 0.8, 1.5] + np.array([0.1, -0.05, 0.4])
    K = camera.intrinsics(30.0, 30.0, 24.0, 24.0)
    r = assert_matches_ray_casting(verts, faces, K, 48, 48)
    assert np.all(r.face_id >= 0)
    # Entirely behind the camera: nothing drawn.
    assert np.all(rasterize(verts - [0, 0, 5], faces, K, 48, 48).face_id == -1)


def test_closed_mesh_edges_are_covered_exactly_once_per_layer():
    """Every pixel ray crosses a closed convex surface 0 or 2 times: no cracks, no overlap."""
    verts, faces = icosphere(2)
    verts = verts * [1.0, 0.9, 0.8] + np.array([0.05, 0.0, 3.0])
    K = camera.intrinsics(50.0, 50.0, 24.0, 24.0)
    count = np.zeros((48, 48), int)
    for f in faces:
        count += rasterize(verts, f[None], K, 48, 48).face_id >= 0
    full = rasterize(verts, faces, K, 48, 48).face_id >= 0
    assert set(np.unique(count)) <= {0, 2}
    np.testing.assert_array_equal(count == 2, full)
    assert full.sum() > 500


def test_grid_on_pixel_centres_is_covered_exactly_once():
    """Vertices exactly on pixel centres (worst case for ties), mixed winding."""
    n = 6
    gx, gy = np.meshgrid(np.arange(n + 1) * 3 + 2.5, np.arange(n + 1) * 3 + 1.5)
    verts = np.stack([gx.ravel(), gy.ravel(), np.ones(gx.size)], 1)
    idx = np.arange((n + 1) ** 2).reshape(n + 1, n + 1)
    faces = []
    for i in range(n):
        for j in range(n):
            a, b, c, d = idx[i, j], idx[i, j + 1], idx[i + 1, j + 1], idx[i + 1, j]
            tris = [(a, b, c), (a, c, d)] if (i + j) % 2 else [(a, b, d), (b, c, d)]
            faces += [t if (i * n + j) % 3 else t[::-1] for t in tris]
    faces = np.array(faces, dtype=np.int32)
    K = np.eye(3)
    count = np.zeros((24, 24), int)
    for f in faces:
        count += rasterize(verts, f[None], K, 24, 24).face_id >= 0
    assert count.max() == 1
    inside = np.zeros((24, 24), bool)
    inside[2:19, 3:20] = True  # pixel centres strictly inside the grid [2.5, 20.5] x [1.5, 19.5]
    assert np.all(count[inside] == 1)
    np.testing.assert_array_equal(rasterize(verts, faces, K, 24, 24).face_id >= 0, count == 1)


def test_batch_matches_single_images():
    verts, faces = body_like_mesh()
    rng = np.random.default_rng(4)
    batch = np.stack(
        [verts + np.array([0, 0, 2.5 + k]) + rng.normal(0, 0.01, verts.shape) for k in range(3)]
    )
    Ks = np.stack([camera.intrinsics(60.0 + 10 * k, 60.0, 32.0, 36.0) for k in range(3)])
    rb = rasterize(batch, faces, Ks, 72, 64)
    assert rb.face_id.shape == (3, 72, 64) and rb.bary.shape == (3, 72, 64, 3)
    for k in range(3):
        rs = rasterize(batch[k], faces, Ks[k], 72, 64)
        np.testing.assert_array_equal(rb.face_id[k], rs.face_id)
        np.testing.assert_array_equal(rb.bary[k], rs.bary)
        np.testing.assert_array_equal(rb.depth[k], rs.depth)
    shared_K = rasterize(batch, faces, Ks[0], 72, 64)  # one K for all
    np.testing.assert_array_equal(shared_K.face_id[0], rb.face_id[0])
    # Reusing the previous result as output buffers overwrites every pixel.
    reused = rasterize(batch[::-1], faces, Ks[::-1], 72, 64, out=shared_K)
    assert reused.face_id is shared_K.face_id
    for got, want in zip(reused, rb):
        np.testing.assert_array_equal(got, want[::-1])
    with pytest.raises(InputError, match=r"out\.bary"):
        rasterize(batch, faces, Ks, 72, 64, out=rb._replace(bary=rb.bary[..., :2]))


def test_cull_back_keeps_the_visible_surface_of_a_closed_mesh():
    verts, faces = body_like_mesh()
    verts = verts + np.array([0, 0, 2.5])
    K = camera.intrinsics(60.0, 60.0, 32.0, 36.0)
    full = rasterize(verts, faces, K, 72, 64)
    culled = rasterize(verts, faces, K, 72, 64, cull_back=True)
    assert (full.face_id == culled.face_id).mean() > 0.995
    reversed_faces = rasterize(verts, faces[:, ::-1], K, 72, 64, cull_back=True)
    assert (reversed_faces.face_id >= 0).sum() > 0  # the back layer is what remains
    assert (reversed_faces.face_id == full.face_id)[full.face_id >= 0].mean() < 0.05


BODY = asset_path("body/hmrt_body.npz")


@pytest.mark.skipif(not BODY.exists(), reason="assets/body/hmrt_body.npz not built")
def test_default_body_matches_ray_casting_on_sampled_pixels():
    body = np.load(BODY, allow_pickle=False)
    faces = body["f"]
    verts = body["v_template"].astype(np.float64) * [1.0, -1.0, -1.0]  # face the camera
    verts += np.array([0.0, 0.0, 48.0]) - (verts.min(0) + verts.max(0)) / 2
    K = camera.crop_intrinsics(224)
    r = rasterize(verts, faces, K, 224, 224)
    rng = np.random.default_rng(8)
    covered = np.argwhere(r.face_id >= 0)
    picks = covered[rng.choice(len(covered), 150, replace=False)]
    border = np.argwhere(
        (r.face_id < 0) & (cv2.dilate((r.face_id >= 0).astype(np.uint8), None) > 0)
    )
    picks = np.concatenate([picks, border[rng.choice(len(border), 50, replace=False)]])
    fid, bary, depth = ray_cast_pixels(verts, faces, K, picks[:, ::-1] + 0.5)
    got = r.face_id[picks[:, 0], picks[:, 1]]
    assert (got == fid).mean() >= 0.995
    same = (got == fid) & (fid >= 0)
    np.testing.assert_allclose(r.bary[picks[:, 0], picks[:, 1]][same], bary[same], atol=1e-4)
    np.testing.assert_allclose(r.depth[picks[:, 0], picks[:, 1]][same], depth[same], rtol=1e-6)
    # A closed, counter-clockwise-outward mesh: culling back faces changes nothing visible.
    culled = rasterize(verts, faces, K, 224, 224, cull_back=True)
    np.testing.assert_array_equal(culled.face_id, r.face_id)
    index, uv = iuv(r, body["dp_I"], body["dp_uv"])
    assert set(np.unique(index)) == set(range(25))  # all 24 parts visible in the rest pose
    assert uv.min() >= 0 and uv.max() <= 1


def test_bad_input_raises_input_error():
    verts, faces = icosphere(0)
    with pytest.raises(InputError, match="faces index"):
        rasterize(verts, faces + 100, np.eye(3), 8, 8)
    with pytest.raises(InputError, match="intrinsics"):
        rasterize(verts, faces, np.ones((3, 3)), 8, 8)
    with pytest.raises(InputError, match="near"):
        rasterize(verts, faces, np.eye(3), 8, 8, near=0.0)


def test_non_finite_vertices_only_drop_their_faces():
    verts = np.array(
        [[-1, -1, 5], [1, -1, 5], [0, np.nan, 5], [0, 1, 5], [0, np.inf, 5]], np.float32
    )
    faces = np.array([[0, 1, 2], [0, 1, 3], [0, 4, 1]], dtype=np.int64)
    r = rasterize(verts, faces, camera.intrinsics(20.0, 20.0, 16.0, 16.0), 32, 32)
    assert set(np.unique(r.face_id)) == {-1, 1}
    assert (r.face_id == 1).sum() == 32  # the 8 x 8 px half-square triangle


def test_jit_without_a_cache_location_still_compiles():
    namespace: dict = {}
    exec("def add_one(x):\n    return x + 1\n", namespace)  # no source file: numba cannot cache
    assert njit()(namespace["add_one"])(1) == 2


# ---------------------------------------------------------------- maps


def body_tables(faces, rng):
    n = len(faces)
    dp_I = (np.arange(n) % 24 + 1).astype(np.uint8)
    dp_uv = rng.uniform(0, 1, (n, 3, 2)).astype(np.float32)
    return dp_I, dp_uv


def test_iuv_maps_from_raster():
    rng = np.random.default_rng(5)
    verts, faces = body_like_mesh()
    verts = verts + np.array([0, 0, 2.5])
    K = camera.intrinsics(60.0, 60.0, 32.0, 36.0)
    dp_I, dp_uv = body_tables(faces, rng)
    r = rasterize(verts, faces, K, 72, 64)
    fg = r.face_id >= 0
    np.testing.assert_array_equal(silhouette(r.face_id), fg)
    parts = part_map(r.face_id, dp_I)
    assert parts.dtype == np.uint8
    np.testing.assert_array_equal(parts[fg], dp_I[r.face_id[fg]])
    assert np.all(parts[~fg] == 0)
    index, uv = iuv(r, dp_I, dp_uv)
    np.testing.assert_array_equal(index, parts)
    expect = np.einsum("pk,pkc->pc", r.bary[fg], dp_uv[r.face_id[fg]])
    np.testing.assert_allclose(uv[fg], expect, atol=1e-6)
    assert uv.min() >= 0 and uv.max() <= 1 and np.all(uv[~fg] == 0)
    i2, uv2 = render_iuv(verts, faces, K, 72, 64, dp_I, dp_uv)
    np.testing.assert_array_equal(i2, index)
    np.testing.assert_array_equal(uv2, uv)

    img = iuv_image(index, uv)
    assert img.shape == (72, 64, 3) and img.dtype == np.float32 and img[..., 0].max() <= 1
    back_i, back_uv = iuv_from_image(img)
    np.testing.assert_array_equal(back_i, index)
    np.testing.assert_array_equal(back_uv, uv)

    hot, u, v = iuv_one_hot(index, uv)
    assert hot.shape == (25, 72, 64)
    np.testing.assert_array_equal(hot.sum(0), 1)
    np.testing.assert_array_equal(hot.argmax(0), index)
    np.testing.assert_allclose(u.sum(0), uv[..., 0])
    np.testing.assert_allclose(v.sum(0), uv[..., 1])


def test_iuv_batched_and_continuous_uv():
    rng = np.random.default_rng(6)
    verts, faces = body_like_mesh()
    batch = np.stack([verts + np.array([0, 0, 2.5]), verts + np.array([0.1, 0, 3.0])])
    K = camera.intrinsics(60.0, 60.0, 32.0, 36.0)
    dp_I, dp_uv = body_tables(faces, rng)
    r = rasterize(batch, faces, K, 48, 40)
    index, uv = iuv(r, dp_I, dp_uv)
    assert index.shape == (2, 48, 40) and uv.shape == (2, 48, 40, 2)
    single_i, single_uv = iuv(rasterize(batch[1], faces, K, 48, 40), dp_I, dp_uv)
    np.testing.assert_array_equal(index[1], single_i)
    np.testing.assert_array_equal(uv[1], single_uv)
    # Continuous UV from a per-vertex chart: channel 0 is the mask, u, v in [0, 1].
    cont_vt = rng.uniform(0, 1, (len(verts), 2)).astype(np.float32)
    out = continuous_iuv(r, cont_vt, faces)
    np.testing.assert_array_equal(out[..., 0], r.face_id >= 0)
    expect = interpolate_vertices(r.face_id, r.bary, faces, cont_vt)
    np.testing.assert_allclose(out[..., 1:], expect)
    assert out[..., 1:].min() >= 0 and out[..., 1:].max() <= 1


def test_low_resolution_maps_from_scaled_intrinsics():
    verts, faces = body_like_mesh()
    verts = verts + np.array([0, 0, 3.0])
    K = camera.intrinsics(150.0, 150.0, 112.0, 112.0)
    big = rasterize(verts, faces, K, 224, 224).face_id >= 0
    small = rasterize(verts, faces, camera.scale_intrinsics(K, 0.25), 56, 56)
    assert abs((small.face_id >= 0).sum() * 16 / big.sum() - 1) < 0.03
    fid, _, _ = ray_cast(verts, faces, camera.scale_intrinsics(K, 0.25), 56, 56)
    assert (fid == small.face_id).mean() >= 0.999


def test_uv_raster_and_location_map():
    """A flat square chart: every texel covered, location map = the vertices' affine image."""
    n, size = 5, 32
    g = np.linspace(0, 1, n + 1)
    uu, vv = np.meshgrid(g, g)
    uv = np.stack([uu.ravel(), vv.ravel()], 1)
    idx = np.arange((n + 1) ** 2).reshape(n + 1, n + 1)
    faces = np.array(
        [t for i in range(n) for j in range(n)
         for t in ((idx[i, j], idx[i, j + 1], idx[i + 1, j + 1]),
                   (idx[i, j], idx[i + 1, j + 1], idx[i + 1, j]))],
        dtype=np.int32,
    )  # fmt: skip
    table = uv_raster(uv, faces, size)
    assert np.all(table.face_id >= 0)
    A = np.array([[0.5, -0.2, 0.1], [0.3, 0.4, -0.6]])
    verts3d = uv @ A + np.array([0.0, 1.0, 2.0])
    loc = location_map(table, faces, verts3d)
    tc = (np.arange(size) + 0.5) / size
    tu, tv = np.meshgrid(tc, 1.0 - tc)  # row 0 is the top of the chart, v = 1
    expect = np.stack([tu, tv], -1) @ A + np.array([0.0, 1.0, 2.0])
    np.testing.assert_allclose(loc, expect, atol=1e-5)
    both = location_map(table, faces, np.stack([verts3d, 2 * verts3d]))
    assert both.shape == (2, size, size, 3)
    np.testing.assert_allclose(both[1], 2 * loc, atol=1e-5)


# ---------------------------------------------------------------- overlay


def test_vertex_normals_of_a_sphere_point_outwards():
    verts, faces = icosphere(2)
    normals = vertex_normals(verts * 2.0 + np.array([1.0, 0, 0]), faces)
    assert normals.dtype == np.float32
    np.testing.assert_allclose((normals * verts).sum(1), 1.0, atol=1e-2)


def test_overlay_changes_only_covered_pixels():
    rng = np.random.default_rng(7)
    verts, faces = body_like_mesh()
    verts = verts + np.array([0.1, 0, 3.0])
    frame = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    K = camera.intrinsics(90.0, 90.0, 80.0, 60.0)
    out = render_overlay(frame, verts, faces, K)
    assert out.shape == frame.shape and out.dtype == np.uint8 and out is not frame
    changed = np.any(out != frame, axis=2)
    mask = rasterize(verts, faces, K, 120, 160).face_id >= 0
    assert not np.any(changed & ~mask)
    assert changed[mask].mean() > 0.9
    inplace = frame.copy()
    assert render_overlay(inplace, verts, faces, K, out=inplace) is inplace
    np.testing.assert_array_equal(inplace, out)
    # mesh partly outside the frame and partly behind the camera: still fine
    render_overlay(frame, verts + np.array([1.0, 0, -2.8]), faces, K)


def test_warmup_compiles_what_real_frames_run():
    """After ``warmup()`` drawing a frame compiles nothing, whatever the caller's arrays are
    (read-only body-model faces, float32 or strided vertices, float32 intrinsics): a fresh
    install would otherwise compile inside the demo's timed loop."""
    from hmrt.runtime.render import overlay, raster, warmup

    warmup()
    kernels = (overlay._vertex_normals, overlay._shade, raster._render_one)
    before = [len(k.signatures) for k in kernels]
    mesh, tris = body_like_mesh()
    mesh = mesh + np.array([0.1, 0, 3.0])
    faces = np.ascontiguousarray(tris, dtype=np.int32)
    faces.flags.writeable = False  # like BodyModel's shared arrays
    K = camera.intrinsics(90.0, 90.0, 80.0, 60.0)

    def frozen(a: np.ndarray) -> np.ndarray:
        a.flags.writeable = False
        return a

    for verts, K_in in (
        (mesh.astype(np.float32), K.astype(np.float32)),  # a model's float32 output
        (frozen(np.asfortranarray(mesh)), frozen(K.T.copy().T)),  # strided, read-only
        (frozen(mesh.copy()), frozen(K.copy())),  # read-only float64
    ):
        frame = np.zeros((120, 160, 3), np.uint8)
        render_overlay(frame, verts, faces, K_in, out=frame)
        assert frame.any()
    assert [len(k.signatures) for k in kernels] == before


def test_overlay_draws_joints_and_skeleton():
    frame = np.zeros((60, 80, 3), np.uint8)
    joints = np.array([[20.5, 30.5], [60.5, 30.5], [np.nan, 0.0]])
    out = draw_skeleton(frame.copy(), joints, parents=(-1, 0, 0))
    assert out[30, 40].any() and out[30, 20].any()  # bone midpoint and joint
    assert not out[5:15, :10].any()
    with pytest.raises(InputError):
        render_overlay(
            np.zeros((4, 4), np.uint8), np.zeros((3, 3)), np.zeros((1, 3), int), np.eye(3)
        )
