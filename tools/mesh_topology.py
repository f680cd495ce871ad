"""Topology helpers for the body-model build: adjacency, edge graph and left/right mirror maps.

Dev-time (numpy, scipy). The MakeHuman mesh is closed, manifold and exactly left/right
symmetric, which ``flip_faces`` and ``mirror_corners`` rely on.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree


def flip_vertices(vertices: np.ndarray) -> tuple[np.ndarray, float]:
    """Mirror vertex of each vertex (nearest vertex of the x-mirrored mesh) and the largest
    distance between a mirrored vertex and its match (metres)."""
    dist, idx = cKDTree(vertices).query(vertices * np.array([-1.0, 1.0, 1.0]))
    return idx.astype(np.int64), float(dist.max())


def flip_faces(faces: np.ndarray, flip_v: np.ndarray) -> np.ndarray:
    """Mirror face of each face (same vertex set after ``flip_v``); -1 where there is none."""
    index = {tuple(sorted(f)): i for i, f in enumerate(faces.tolist())}
    return np.array([index.get(tuple(sorted(f)), -1) for f in flip_v[faces].tolist()])


def mirror_corners(faces: np.ndarray, flip_v: np.ndarray, flip_f: np.ndarray) -> np.ndarray:
    """(F, 3) corner of the mirror face that holds the mirror of each corner's vertex."""
    mirrored = faces[flip_f]  # (F, 3) vertices of the mirror face
    target = flip_v[faces]  # what each corner's vertex becomes
    return np.argmax(mirrored[:, None, :] == target[:, :, None], axis=2)


def face_adjacency(faces: np.ndarray) -> np.ndarray:
    """(F, 3) face across each edge (corner k -> k+1) of a closed manifold triangle mesh."""
    n = len(faces)
    edges = np.stack([faces, np.roll(faces, -1, axis=1)], -1).reshape(-1, 2)
    key = np.sort(edges, 1)
    order = np.lexsort((key[:, 1], key[:, 0]))
    pairs = order.reshape(-1, 2)  # each undirected edge appears exactly twice
    if not np.all(key[pairs[:, 0]] == key[pairs[:, 1]]):
        raise RuntimeError("the mesh is not closed and edge-manifold")
    adj = np.empty(3 * n, dtype=np.int64)
    adj[pairs[:, 0]] = pairs[:, 1] // 3
    adj[pairs[:, 1]] = pairs[:, 0] // 3
    return adj.reshape(n, 3)


def edge_graph(vertices: np.ndarray, faces: np.ndarray) -> sp.csr_matrix:
    """Symmetric sparse matrix of edge lengths (for shortest paths along edges)."""
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    e = np.unique(np.sort(e, 1), axis=0)
    w = np.linalg.norm(vertices[e[:, 0]] - vertices[e[:, 1]], axis=1)
    n = len(vertices)
    g = sp.coo_matrix((w, (e[:, 0], e[:, 1])), shape=(n, n))
    return (g + g.T).tocsr()


def compact_uv(uv: np.ndarray, uv_faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop UV vertices that no face uses and renumber the faces."""
    used, inverse = np.unique(uv_faces, return_inverse=True)
    return uv[used], inverse.reshape(uv_faces.shape)
