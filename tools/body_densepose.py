"""DensePose-style 24-part segmentation of the open body mesh, with a U,V chart per part.

Part indices follow DensePose (docs: DensePose ``challenge/2019_COCO_DensePose/data_format.md``;
front/back order as observed on DensePose-COCO): 1/2 torso back/front, 3 right hand, 4 left hand,
5 left foot, 6 right foot, 7/9 right thigh back/front, 8/10 left thigh back/front, 11/13 right
shin back/front, 12/14 left shin back/front, 15/17 left upper arm front/back, 16/18 right upper
arm front/back, 19/21 left forearm front/back, 20/22 right forearm front/back, 23/24 head
right/left. "Front" is the +Z half in the T-pose, split at each cross-section's mid-depth.

Procedure (shared/research/body-model-and-data.md, section 4.2): coarse parts from the merged
skinning weights (smoothed over the surface first, so that borders are smooth curves), decided
per quad of the MakeHuman mesh; jagged borders cleaned by a majority filter over quad adjacency
and stray islands merged into their surroundings; then the front/back (head: right/left) split.
Each part of the subject's right side is flattened without flips or overlaps (``uv_flatten``:
Tutte embedding, then SLIM), turned to match (angle around the part's axis, position along it)
and stretched to [0, 1]. The torso patches are flattened as right halves with the midline held
straight, then mirrored. The left side is the mirror image, so a horizontal flip maps part I
to MIRROR_PART[I] with U,V unchanged, except on the torso (1, 2), where U -> 1 - U.
"""

from __future__ import annotations

import itertools

import numpy as np
import uv_flatten

# Coarse part -> (SMPL joints whose weights vote for it, DensePose index of its back/right patch
# or only patch, index of its front/left patch or 0, axis start joint, axis end joint).
COARSE = (
    ("torso", (0, 3, 6, 9, 13, 14), 1, 2, 12, 0),
    ("head", (12, 15), 23, 24, 12, 15),
    ("right_hand", (21, 23), 3, 0, 21, 23),
    ("left_hand", (20, 22), 4, 0, 20, 22),
    ("left_foot", (7, 10), 5, 0, 7, 10),
    ("right_foot", (8, 11), 6, 0, 8, 11),
    ("right_thigh", (2,), 7, 9, 2, 5),
    ("left_thigh", (1,), 8, 10, 1, 4),
    ("right_shin", (5,), 11, 13, 5, 8),
    ("left_shin", (4,), 12, 14, 4, 7),
    ("left_upper_arm", (16,), 17, 15, 16, 18),
    ("right_upper_arm", (17,), 18, 16, 17, 19),
    ("left_forearm", (18,), 21, 19, 18, 20),
    ("right_forearm", (19,), 22, 20, 19, 21),
)
MIRROR_PART = np.array([0, 1, 2, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15, 18, 17, 20, 19,
                        22, 21, 24, 23])  # fmt: skip
CENTRAL_PARTS = (1, 2)
SMOOTHING_ITERS = 30
# Parts whose chart is computed; the others are mirror copies (the subject's right + the torso).
COMPUTED_PARTS = (1, 2, 3, 6, 7, 9, 11, 13, 16, 18, 20, 22, 23)
FRONT_PARTS = (2, 9, 10, 13, 14, 15, 16, 19, 20)
PLANAR_PARTS = (3, 4, 5, 6)


def smooth_vertex_field(field: np.ndarray, faces: np.ndarray, iters: int) -> np.ndarray:
    """``iters`` steps of averaging each vertex with the mean of its neighbours (uniform
    Laplacian smoothing), so that iso-lines, hence part borders, become smooth curves."""
    import scipy.sparse as sp

    n = len(field)
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    adj = sp.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n, n)).tocsr()
    adj = ((adj + adj.T) > 0).astype(float)
    mean = sp.diags(1.0 / np.asarray(adj.sum(1)).ravel()) @ adj
    for _ in range(iters):
        field = 0.5 * field + 0.5 * (mean @ field)
    return field


def majority_filter(labels: np.ndarray, adjacency: np.ndarray, group=None, iters: int = 20):
    """Give each element the label that at least 3 of its 4 neighbours share, if it differs;
    with ``group``, only neighbours of the same group vote. Repeats until nothing changes."""
    labels = labels.copy()
    for _ in range(iters):
        nb = labels[adjacency]
        if group is not None:
            nb = np.where(group[adjacency] == group[:, None], nb, -1)
        counts = (nb[:, :, None] == nb[:, None, :]).sum(2) * (nb >= 0)
        best = nb[np.arange(len(nb)), counts.argmax(1)]
        change = (counts.max(1) >= 3) & (best != labels)
        if not change.any():
            break
        labels[change] = best[change]
    return labels


def _components(labels: np.ndarray, adjacency: np.ndarray) -> np.ndarray:
    """Connected-component id of every element, joining neighbours with equal labels."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    n = len(labels)
    rows = np.repeat(np.arange(n), adjacency.shape[1])
    cols = adjacency.ravel()
    same = labels[rows] == labels[cols]
    graph = sp.coo_matrix((np.ones(same.sum()), (rows[same], cols[same])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def merge_islands(labels: np.ndarray, adjacency: np.ndarray) -> np.ndarray:
    """Give every connected piece of a label but its largest to the label most common around it."""
    labels = labels.copy()
    for _ in range(20):
        comp = _components(labels, adjacency)
        sizes = np.bincount(comp)
        first = np.unique(comp, return_index=True)[1]
        largest = {}
        for c in np.argsort(sizes, kind="stable"):  # ascending: each label keeps its largest
            largest[labels[first[c]]] = c
        stray = ~np.isin(comp, list(largest.values()))
        if not stray.any():
            break
        for c in np.unique(comp[stray]):
            members = np.where(comp == c)[0]
            around = labels[adjacency[members]].ravel()
            around = around[around != labels[members[0]]]
            labels[members] = np.bincount(around).argmax()
    return labels


def quad_adjacency(face_adjacency: np.ndarray) -> np.ndarray:
    """(Q, 4) neighbouring quads of an all-quad mesh triangulated as faces (2q, 2q + 1)."""
    n_quads = len(face_adjacency) // 2
    nb = (face_adjacency // 2).reshape(n_quads, 6)
    keep = nb != np.arange(n_quads)[:, None]
    if not np.all(keep.sum(1) == 4):
        raise RuntimeError("faces 2q and 2q+1 do not pair up into quads")
    return nb[keep].reshape(n_quads, 4)


def _frame(joints: np.ndarray, start: int, end: int, front: np.ndarray):
    """Unit axis (start -> end joint) and the ``front`` direction made orthogonal to it."""
    axis = joints[end] - joints[start]
    axis /= np.linalg.norm(axis)
    f = front - (front @ axis) * axis
    return axis, f / np.linalg.norm(f)


def _depth(points: np.ndarray, sample: np.ndarray, axis: np.ndarray, f: np.ndarray):
    """Signed distance of ``points`` in front of the mid-depth of the cross-sections of
    ``sample`` (positive = front)."""
    t, s = sample @ axis, sample @ f
    edges = np.linspace(t.min(), t.max(), 25)
    centres, mids = [], []
    for lo, hi in itertools.pairwise(edges):
        inside = (t >= lo) & (t <= hi)
        if inside.sum() >= 3:
            centres.append(0.5 * (lo + hi))
            mids.append(0.5 * (s[inside].max() + s[inside].min()))
    return points @ f - np.interp(points @ axis, centres, mids)


def part_labels(
    vertices: np.ndarray,
    faces: np.ndarray,
    joints: np.ndarray,
    weights: np.ndarray,
    adjacency: np.ndarray,
    flip_f: np.ndarray,
) -> tuple[np.ndarray, dict]:
    """DensePose index 1..24 of every face, exactly left/right symmetric.

    Decided per quad of the (all-quad, triangulated) MakeHuman mesh, so that borders follow
    quad edges rather than zig-zagging through them.
    """
    quads = quad_adjacency(adjacency)
    votes = np.stack([weights[:, list(j)].sum(1) for _, j, *_ in COARSE], 1)
    votes = smooth_vertex_field(votes, faces, SMOOTHING_ITERS)
    coarse = votes[faces].mean(1).reshape(len(quads), 2, -1).mean(1).argmax(1)
    coarse = merge_islands(majority_filter(coarse, quads), quads)

    centroids = vertices[faces].mean(1).reshape(len(quads), 2, 3).mean(1)
    labels = np.zeros(len(quads), dtype=np.int64)
    for c, (name, _, first, second, start, end) in enumerate(COARSE):
        sel = coarse == c
        if not second:
            labels[sel] = first
        elif name == "head":
            labels[sel] = np.where(centroids[sel, 0] < 0, first, second)
        else:
            axis, f = _frame(joints, start, end, np.array([0.0, 0.0, 1.0]))
            quad_faces = faces.reshape(len(quads), 6)[sel]
            used = np.unique(quad_faces)
            depth = np.zeros(len(vertices))
            depth[used] = _depth(vertices[used], vertices[used], axis, f)
            front = depth[quad_faces].mean(1) > 0
            front_index = second if second in FRONT_PARTS else first
            back_index = first if front_index == second else second
            labels[sel] = np.where(front, front_index, back_index)
    labels = merge_islands(majority_filter(labels, quads, group=coarse), quads)
    labels = np.repeat(labels, 2)

    left = vertices[faces].mean(1)[:, 0] > 0
    labels[left] = MIRROR_PART[labels[flip_f[left]]]
    counts = np.bincount(labels, minlength=25)[1:]
    comp = _components(labels, adjacency)
    pieces = np.array([len(np.unique(comp[labels == p])) for p in range(1, 25)])
    return labels, {"dp_faces": counts, "dp_pieces": pieces}


def _coarse_of(part: int) -> tuple:
    for entry in COARSE:
        if part in entry[2:4]:
            return entry
    raise KeyError(part)


def _reference_coords(points: np.ndarray, joints: np.ndarray, part: int) -> np.ndarray:
    """(angle around the axis x typical radius, position along the axis) for a part's vertices;
    planar (sideways, along) for hands and feet."""
    _, _, _, _, start, end = _coarse_of(part)
    if part in PLANAR_PARTS:
        axis, f = _frame(joints, start, end, np.array([0.0, 1.0, 0.0]))
    else:
        axis, f = _frame(joints, start, end, np.array([0.0, 0.0, 1.0]))
        if part not in FRONT_PARTS and part not in (23, 24):
            f = -f
    g = np.cross(axis, f)
    rel = points - joints[start]
    along = rel @ axis
    if part in PLANAR_PARTS:
        return np.stack([rel @ g, along], 1)
    radial = rel - along[:, None] * axis
    radius = np.median(np.linalg.norm(radial, axis=1))
    return np.stack([radius * np.arctan2(rel @ g, rel @ f), along], 1)


def _procrustes(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``source`` moved by the similarity (reflection allowed) that best fits ``target``."""
    sc, tc = source - source.mean(0), target - target.mean(0)
    u, s, vt = np.linalg.svd(sc.T @ tc)
    rot = u @ vt
    scale = s.sum() / (sc**2).sum()
    return scale * sc @ rot + target.mean(0)


def part_uvs(
    vertices: np.ndarray,
    faces: np.ndarray,
    joints: np.ndarray,
    labels: np.ndarray,
    flip_v: np.ndarray,
    flip_f: np.ndarray,
    corners: np.ndarray,
) -> tuple[np.ndarray, dict]:
    """(F, 3, 2) per-corner U,V in [0, 1] within each face's part.

    Each part of the subject's right side is flattened on its own, turned to match (angle
    around, position along) its axis and stretched to [0, 1]. The torso patches are flattened
    as right halves with the midline held straight, then mirrored, so their U is exactly
    symmetric about 0.5. Left parts copy their right mirror part.
    """
    right = vertices[faces].mean(1)[:, 0] < 0
    dp_uv = np.zeros((len(faces), 3, 2))
    kept = np.zeros(25, dtype=np.int64)
    for part in COMPUTED_PARTS:
        sel = np.where((labels == part) & (right | (part not in CENTRAL_PARTS)))[0]
        used, local = np.unique(faces[sel], return_inverse=True)
        local = local.reshape(-1, 3)
        if part in CENTRAL_PARTS:
            uv, kept[part] = uv_flatten.flatten_disk(
                vertices[used], local, line=_midline_run(vertices, used, local, flip_v)
            )
        else:
            uv, kept[part] = uv_flatten.flatten_disk(vertices[used], local)
            uv = _procrustes(uv, _reference_coords(vertices[used], joints, part))
            uv = (uv - uv.min(0)) / np.ptp(uv, axis=0)
        dp_uv[sel] = uv[local]
    left = ~right
    dp_uv[left] = dp_uv[flip_f[left][:, None], corners[left]]
    for part in CENTRAL_PARTS:
        sel = labels == part
        dp_uv[sel & left, :, 0] *= -1.0
        u, v = dp_uv[sel, :, 0], dp_uv[sel, :, 1]
        dp_uv[sel, :, 0] = 0.5 + 0.5 * u / np.abs(u).max()
        dp_uv[sel, :, 1] = (v - v.min()) / np.ptp(v)
    kept[MIRROR_PART[list(COMPUTED_PARTS)]] = kept[list(COMPUTED_PARTS)]
    flipped = np.zeros(25, dtype=np.int64)
    for part in range(1, 25):
        corner_uv = dp_uv[labels == part].reshape(-1, 2)
        area = uv_flatten.signed_areas(corner_uv, np.arange(len(corner_uv)).reshape(-1, 3))
        flipped[part] = min((area > 0).sum(), (area < 0).sum())
    return dp_uv, {"dp_flipped": flipped[1:], "dp_slim_iters": kept[1:]}


def _midline_run(vertices: np.ndarray, used: np.ndarray, local: np.ndarray, flip_v: np.ndarray):
    """The part's boundary vertices on the midline (local indices), top first."""
    loop = uv_flatten.boundary_loops(local)[0]
    on_mid = flip_v[used[loop]] == used[loop]
    start = np.where(on_mid & ~np.roll(on_mid, 1))[0]
    if len(start) != 1:
        raise RuntimeError("a torso half should meet the midline along one run")
    loop, on_mid = np.roll(loop, -start[0]), np.roll(on_mid, -start[0])
    run = loop[: int(np.argmin(on_mid))]
    return run if vertices[used[run[0]], 1] > vertices[used[run[-1]], 1] else run[::-1]


def report(stats: dict) -> None:
    """Print the DensePose part statistics."""
    faces = stats["dp_faces"]
    print(f"DensePose parts: faces per part {faces.min()}-{faces.max()}; "
          f"pieces per part {stats['dp_pieces'].tolist()}")  # fmt: skip
    print(f"  flipped U,V triangles per part {stats['dp_flipped'].tolist()}; "
          f"SLIM iterations kept {stats['dp_slim_iters'].tolist()}")  # fmt: skip
