"""Continuous single-chart UV map of the open body mesh (DecoMR's "boundary-free" UV map).

DecoMR (Zeng et al., CVPR 2020) cuts the closed mesh into one disk and flattens it with low area
distortion, then makes the map left/right symmetric. Here the symmetry is built in: the mesh is
split along its sagittal midline, and only the subject's right half is flattened.

* Seams on the right half (a tree, so the half stays a disk): the back midline (crown to
  crotch), a path across the upper back to the armpit and along the underside of the arm into
  the palm, and the inside of the leg from the crotch past the inner ankle into the sole. All are
  shortest edge paths through waypoints. Fingers and toes are not cut open (their unrolled
  strips overlapped each other), so hands and feet flatten like mittens and get less area.
* The front midline (crotch to crown, a geodesic of the symmetric surface) is held on the
  straight line u = 0 with its own arc length; the half is flattened by a Tutte embedding into a
  D shape, then SLIM (libigl, symmetric Dirichlet energy) lowers the distortion, keeping only
  iterates with no flipped triangle and a simple (non-overlapping) boundary inside u < 0.
* The left half is the mirror image (u -> -u); the two halves share the front-midline vertices,
  so the chart is one connected piece, exactly symmetric about u = 0.5 with the subject's left at
  u > 0.5, and v grows toward the head. Seam vertices have one UV per side; ``v2vt`` picks one.
"""

from __future__ import annotations

import itertools

import mesh_topology
import numpy as np
import scipy.sparse as sp
import uv_flatten
from scipy.sparse.csgraph import connected_components, dijkstra

MARGIN = 0.02
SLIM_ITERS = 60


def _midline_paths(vertices: np.ndarray, faces: np.ndarray, flip_v: np.ndarray):
    """The midline loop split into its front and back paths, both from the crotch to the crown."""
    mid = np.where(flip_v == np.arange(len(flip_v)))[0]
    graph = mesh_topology.edge_graph(vertices, faces)[mid][:, mid]
    if not np.all(np.diff(graph.indptr) == 2):
        raise RuntimeError("the sagittal midline is not a single edge loop")
    loop = [0, graph.indices[graph.indptr[0]]]
    while len(loop) < len(mid):
        a, b = graph.indices[graph.indptr[loop[-1]] : graph.indptr[loop[-1] + 1]]
        loop.append(a if a != loop[-2] else b)
    loop = mid[np.array(loop)]
    crown = int(np.argmax(vertices[loop, 1]))
    loop = np.roll(loop, -crown)  # starts at the crown
    crotch = int(np.argmin(vertices[loop, 1]))
    one, two = loop[: crotch + 1][::-1], np.append(loop[crotch:], loop[0])
    if vertices[one, 2].mean() > vertices[two, 2].mean():
        return one, two
    return two, one


def _nearest(vertices: np.ndarray, candidates: np.ndarray, point: np.ndarray) -> int:
    return int(candidates[np.argmin(np.linalg.norm(vertices[candidates] - point, axis=1))])


def _seam_tree(vertices, faces, joints, weights, half_faces, front, back) -> list:
    """Seam paths (vertex lists) on the right half; see the module docstring."""
    graph = mesh_topology.edge_graph(vertices, faces[half_faces])
    blocked = np.zeros(len(vertices), dtype=bool)
    blocked[front] = blocked[back] = True
    paths = []

    def connect(target: int, sources) -> list:
        sources = np.asarray(sources)
        allowed = ~blocked
        allowed[sources] = True
        keep = sp.diags(allowed.astype(float))
        g = keep @ graph @ keep
        _, pred, _ = dijkstra(g, indices=sources, min_only=True, return_predecessors=True)
        path = [target]
        while pred[path[-1]] >= 0:
            path.append(int(pred[path[-1]]))
        if path[-1] not in set(sources.tolist()):
            raise RuntimeError(f"no seam path from vertex {target}")
        blocked[path] = True
        paths.append(path)
        return path

    right = np.setdiff1d(np.unique(faces[half_faces]), np.concatenate([front, back]))

    def side_of(*joint_ids) -> np.ndarray:
        return right[weights[right][:, list(joint_ids)].sum(1) > 0.5]

    down, medial = np.array([0.0, -0.1, 0.0]), np.array([0.1, 0.0, 0.0])
    # Arm (SMPL right side: shoulder 17, elbow 19, wrist 21, hand 23).
    upper_back = back[(vertices[back, 1] > joints[6, 1]) & (vertices[back, 1] < joints[12, 1])]
    arm = connect(_nearest(vertices, side_of(17, 14, 9, 6), joints[17] + 1.2 * down), upper_back)
    for point, group in (
        (joints[19] + down, (17, 19)),
        (joints[21] + down, (19, 21)),
        (0.5 * (joints[21] + joints[23]) + down, (21, 23)),
    ):
        arm += connect(_nearest(vertices, side_of(*group), point), arm)
    # Leg (right hip 2, knee 5, ankle 8, foot 11), starting at the crotch.
    leg = [int(front[0])]
    for point, group in (
        (joints[5] + medial, (2, 5)),
        (joints[8] + medial, (5, 8)),
        (0.5 * (joints[8] + joints[11]) + down, (8, 11)),
    ):
        leg += connect(_nearest(vertices, side_of(*group), point), leg)
    return paths


def _cut(faces: np.ndarray, adjacency: np.ndarray, half_faces: np.ndarray, cut_edges: set):
    """Split the half mesh along ``cut_edges``: chart vertex of every corner (n, 3) and the
    original vertex of every chart vertex."""
    n = len(faces)
    in_half = np.zeros(n, dtype=bool)
    in_half[half_faces] = True
    rows, cols = [], []
    for k in range(3):
        a, b = faces[half_faces, k], faces[half_faces, (k + 1) % 3]
        other = adjacency[half_faces, k]
        keep = in_half[other] & np.array(
            [(min(x, y), max(x, y)) not in cut_edges for x, y in zip(a.tolist(), b.tolist())]
        )
        f, g = half_faces[keep], other[keep]
        for vert, corner in ((a[keep], k), (b[keep], (k + 1) % 3)):
            g_corner = np.argmax(faces[g] == vert[:, None], axis=1)
            rows.append(3 * f + corner)
            cols.append(3 * g + g_corner)
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    graph = sp.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(3 * n, 3 * n))
    _, comp = connected_components(graph, directed=False)
    corner_comp = comp.reshape(n, 3)[half_faces]
    ids, chart_faces = np.unique(corner_comp, return_inverse=True)
    chart_faces = chart_faces.reshape(-1, 3)
    origin = np.empty(len(ids), dtype=np.int64)
    origin[chart_faces] = faces[half_faces]
    return chart_faces, origin


def continuous_chart(vertices, faces, joints, weights, flip_v, flip_f, corners) -> dict:
    """``vt`` (T, 2), ``ft`` (F, 3), ``v2vt`` (V,) of the symmetric chart and its statistics."""
    front, back = _midline_paths(vertices, faces, flip_v)
    crotch, crown = int(front[0]), int(front[-1])
    centroid_x = vertices[faces].mean(1)[:, 0]
    half_faces = np.where(centroid_x < 0)[0]
    if not np.array_equal(np.sort(flip_f[half_faces]), np.where(centroid_x > 0)[0]):
        raise RuntimeError("faces must pair up left/right with none on the midline")
    paths = _seam_tree(vertices, faces, joints, weights, half_faces, front, back)
    cut_edges = {(min(a, b), max(a, b)) for p in paths for a, b in itertools.pairwise(p)}
    adjacency = mesh_topology.face_adjacency(faces)
    chart_faces, origin = _cut(faces, adjacency, half_faces, cut_edges)
    loops = uv_flatten.boundary_loops(chart_faces)
    if len(loops) != 1:
        raise RuntimeError(f"the cut right half has {len(loops)} boundary loops, expected 1")
    loop = loops[0]

    # The front midline's chart vertices, crotch first, as they run along the boundary.
    on_front = np.isin(origin[loop], front)
    starts = np.where(on_front & ~np.roll(on_front, 1))[0]
    lengths = [np.argmin(np.roll(on_front, -s)) for s in starts]
    loop = np.roll(loop, -starts[int(np.argmax(lengths))])
    run = loop[: len(front)]
    if origin[run[0]] == crown:
        run = run[::-1]
    if origin[run[0]] != crotch or origin[run[-1]] != crown:
        raise RuntimeError("the front midline is not one run of the cut half's boundary")
    uv, used = uv_flatten.flatten_disk(vertices[origin], chart_faces, line=run, iters=SLIM_ITERS)

    # Mirror to the left half; the front-midline chart vertices are shared.
    n_right = len(origin)
    mirror = np.full(n_right, -1, dtype=np.int64)
    mirror[run] = run
    others = np.setdiff1d(np.arange(n_right), run)
    mirror[others] = n_right + np.arange(len(others))
    chart_uv = np.concatenate([uv, uv[others] * np.array([-1.0, 1.0])])
    ft = np.zeros_like(faces)
    ft[half_faces] = chart_faces
    left = flip_f[half_faces]
    ft[left[:, None], corners[half_faces]] = mirror[chart_faces]

    scale = (1 - 2 * MARGIN) / max(2 * np.abs(chart_uv[:, 0]).max(), np.ptp(chart_uv[:, 1]))
    vt = np.stack(
        [0.5 + scale * chart_uv[:, 0], 0.5 + scale * (chart_uv[:, 1] - chart_uv[:, 1].mean())], 1
    )
    vt[:, 1] += 0.5 - 0.5 * (vt[:, 1].max() + vt[:, 1].min())

    v2vt = np.empty(len(vertices), dtype=np.int64)
    side_faces = np.concatenate([left, half_faces])  # right half written last wins on the midline
    v2vt[faces[side_faces]] = ft[side_faces]
    full_mirror = np.concatenate([mirror, np.zeros(len(others), dtype=np.int64)])
    full_mirror[mirror[others]] = others
    n_seam = 2 * len(cut_edges) + len(back) - 1
    stats = _chart_stats(vertices, faces, vt, ft, full_mirror, n_seam, used)
    return {"vt": vt, "ft": ft, "v2vt": v2vt, "stats": stats}


def _chart_stats(vertices, faces, vt, ft, mirror, n_seam, slim_iters) -> dict:
    area = uv_flatten.signed_areas(vt, ft)
    sign = np.sign(np.median(area))
    area3 = 0.5 * np.linalg.norm(
        np.cross(
            vertices[faces[:, 1]] - vertices[faces[:, 0]],
            vertices[faces[:, 2]] - vertices[faces[:, 0]],
        ),
        axis=1,
    )
    ratio = np.abs(area) / area3
    ratio /= np.abs(area).sum() / area3.sum()
    e = np.concatenate([ft[:, [0, 1]], ft[:, [1, 2]], ft[:, [2, 0]]])
    graph = sp.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(len(vt), len(vt)))
    n_pieces = connected_components(graph, directed=False)[0]
    sym = np.abs(vt[:, 0] + vt[mirror, 0] - 1).max() + np.abs(vt[:, 1] - vt[mirror, 1]).max()
    return {
        "chart_vt": len(vt),
        "chart_seam_edges": int(n_seam),
        "chart_pieces": int(n_pieces),
        "chart_flipped": int((sign * area <= 0).sum()),
        "chart_coverage": float(np.abs(area).sum()),
        "chart_symmetry_err": float(sym),
        "chart_u_range": (float(vt[:, 0].min()), float(vt[:, 0].max())),
        "chart_v_range": (float(vt[:, 1].min()), float(vt[:, 1].max())),
        "chart_area_ratio_p5_p95": (
            float(np.percentile(ratio, 5)),
            float(np.percentile(ratio, 95)),
        ),
        "chart_slim_iters": int(slim_iters),
    }


def report(stats: dict) -> None:
    """Print the continuous chart's statistics."""
    print(f"continuous UV chart: {stats['chart_vt']} UV vertices, {stats['chart_pieces']} "
          f"connected piece(s), {stats['chart_flipped']} flipped triangles, "
          f"{stats['chart_seam_edges']} seam edges, SLIM iterations kept {stats['chart_slim_iters']}")  # fmt: skip
    print(f"  coverage of the unit square {stats['chart_coverage']:.3f}; u in "
          f"[{stats['chart_u_range'][0]:.3f}, {stats['chart_u_range'][1]:.3f}], v in "
          f"[{stats['chart_v_range'][0]:.3f}, {stats['chart_v_range'][1]:.3f}]; symmetry error "
          f"{stats['chart_symmetry_err']:.2e}")  # fmt: skip
    lo, hi = stats["chart_area_ratio_p5_p95"]
    print(
        f"  area distortion (UV/3D area, relative to the mean): 5th-95th percentile {lo:.2f}-{hi:.2f}"
    )
