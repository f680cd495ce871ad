"""Flatten a disk-topology triangle mesh to the plane with no flipped triangle and no overlap.

Used by the body-model build for every UV map it makes (dev-time; numpy, scipy, libigl).
A Tutte embedding (uniform weights, boundary on a convex curve) is bijective; SLIM (libigl's
scalable locally injective maps, symmetric Dirichlet energy) then lowers its distortion while
keeping every triangle's orientation. SLIM's boundary is free and may come to overlap itself,
so every iterate is checked and the last valid one is kept.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg


def signed_areas(uv: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Signed areas of the UV triangles (positive = counter-clockwise)."""
    a, b, c = uv[faces[:, 0]], uv[faces[:, 1]], uv[faces[:, 2]]
    ab, ac = b - a, c - a
    return 0.5 * (ab[:, 0] * ac[:, 1] - ab[:, 1] * ac[:, 0])


def boundary_loops(faces: np.ndarray) -> list[np.ndarray]:
    """Ordered boundary loops of a manifold triangle mesh (vertex indices)."""
    half = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    interior = {(a, b) for a, b in half.tolist()}
    nxt = {a: b for a, b in half.tolist() if (b, a) not in interior}
    loops = []
    while nxt:
        start = next(iter(nxt))
        loop = [start]
        while nxt[loop[-1]] != start:
            loop.append(nxt.pop(loop[-1]))
        nxt.pop(loop[-1])
        loops.append(np.array(loop))
    return loops


def tutte(faces: np.ndarray, fixed: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Uniform-weight (Tutte) embedding with ``fixed`` vertices at ``positions``."""
    n = int(faces.max()) + 1
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    adj = sp.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n, n)).tocsr()
    adj = ((adj + adj.T) > 0).astype(float)
    lap = (sp.diags(np.asarray(adj.sum(1)).ravel()) - adj).tocsr()
    free = np.setdiff1d(np.arange(n), fixed)
    uv = np.zeros((n, 2))
    uv[fixed] = positions
    rhs = -(lap[free][:, fixed] @ positions)
    solve = scipy.sparse.linalg.factorized(lap[free][:, free].tocsc())
    uv[free] = np.stack([solve(rhs[:, 0]), solve(rhs[:, 1])], 1)
    return uv


def boundary_is_simple(uv: np.ndarray, loop: np.ndarray, block: int = 512) -> bool:
    """True when no two non-adjacent segments of the closed polygon ``uv[loop]`` intersect."""
    a, b = uv[loop], uv[np.roll(loop, -1)]
    m = len(loop)

    def orient(x, y, z):
        return np.sign((y[..., 0] - x[..., 0]) * (z[..., 1] - x[..., 1])
                       - (y[..., 1] - x[..., 1]) * (z[..., 0] - x[..., 0]))  # fmt: skip

    for start in range(0, m, block):
        p, q = a[start : start + block, None], b[start : start + block, None]
        hit = (orient(p, q, a[None]) * orient(p, q, b[None]) < 0) & (
            orient(a[None], b[None], p) * orient(a[None], b[None], q) < 0
        )
        i = np.arange(start, min(start + block, m))[:, None]
        gap = np.abs(i - np.arange(m)[None])
        if np.any(hit & (gap > 1) & (gap < m - 1)):
            return False
    return True


def _arc_lengths(points: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])


def flatten_disk(
    pos3: np.ndarray, faces: np.ndarray, line: np.ndarray | None = None, iters: int = 60
) -> tuple[np.ndarray, int]:
    """UV (n, 2) of a disk mesh, in metres, and the number of SLIM iterations kept.

    With ``line`` (a run of consecutive boundary vertices), those vertices are held on the line
    u = 0 at their 3D arc length (v = 0 at ``line[0]``) and the rest of the mesh stays in u < 0,
    so that the mirror image (u -> -u) joins it along the line without overlap.
    """
    import igl

    loops = boundary_loops(faces)
    if len(loops) != 1:
        raise ValueError(f"expected a disk (one boundary loop), got {len(loops)} loops")
    loop = loops[0]
    if line is None:
        t = _arc_lengths(pos3[np.append(loop, loop[0])])
        phi = 2 * np.pi * t[:-1] / t[-1]
        radius = t[-1] / (2 * np.pi)
        positions = radius * np.stack([np.cos(phi), np.sin(phi)], 1)
        held, held_uv = np.zeros(0, dtype=np.int64), np.zeros((0, 2))
    else:
        start = int(np.where(loop == line[0])[0][0])
        loop = np.roll(loop, -start)
        if loop[1] != line[1]:
            loop = np.roll(loop[::-1], 1)
        if not np.array_equal(loop[: len(line)], line):
            raise ValueError("the line is not a run of consecutive boundary vertices")
        held = np.asarray(line)
        held_uv = np.stack([np.zeros(len(line)), _arc_lengths(pos3[line])], 1)
        height = held_uv[-1, 1]
        rest = np.append(loop[len(line) - 1 :], loop[0])  # line end ... back to line start
        t = _arc_lengths(pos3[rest])
        phi = np.pi / 2 + np.pi * t[1:-1] / t[-1]
        rest_uv = 0.5 * height * np.stack([np.cos(phi), 1.0 + np.sin(phi)], 1)
        positions = np.concatenate([held_uv, rest_uv])
    uv = tutte(faces, loop, positions)
    # SLIM needs counter-clockwise triangles: work in the mirror image (v -> -v) if they are not.
    mirror = np.array([1.0, -1.0 if np.median(signed_areas(uv, faces)) < 0 else 1.0])
    uv, held_uv = uv * mirror, held_uv * mirror
    others = np.setdiff1d(loop, held)

    def valid(candidate: np.ndarray) -> bool:
        if signed_areas(candidate, faces).min() <= 0:
            return False
        if len(held) and candidate[others, 0].max() >= 0:
            return False
        return boundary_is_simple(candidate, loop)

    slim = igl.slim_precompute(
        np.asfortranarray(pos3, dtype=np.float64),
        np.asfortranarray(faces, dtype=np.int32),
        np.asfortranarray(uv),
        igl.MappingEnergyType.SYMMETRIC_DIRICHLET,
        held.astype(np.int32),
        np.asfortranarray(held_uv),
        1e6,
    )
    iterates = [uv]
    for _ in range(iters):
        step = np.array(igl.slim_solve(slim, 1))
        step[held] = held_uv  # exactly on the line (SLIM holds it softly, to ~1e-6 m)
        iterates.append(step)
    kept = next((i for i in range(len(iterates) - 1, -1, -1) if valid(iterates[i])), None)
    if kept is None:
        raise RuntimeError("no valid flattening (degenerate triangles on the held line?)")
    return iterates[kept] * mirror, kept
