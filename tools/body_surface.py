"""Surface data of the open body model: atlas UVs, DensePose-style parts, continuous UV, flips.

Dev-time half of ``build_body_model.py`` (numpy, scipy, libigl; no anny). Input is the T-posed
mean mesh in SMPL's frame (Y up, facing +Z, subject's left +X), which is exactly left/right
symmetric, so every map here is made symmetric by construction: the subject's right side is
computed and the left side is its mirror image.
"""

from __future__ import annotations

import body_densepose
import body_uv_chart
import numpy as np
from mesh_topology import (
    compact_uv,
    face_adjacency,
    flip_faces,
    flip_vertices,
    mirror_corners,
)


def build_surface(
    template: np.ndarray,
    faces: np.ndarray,
    joints: np.ndarray,
    weights: np.ndarray,
    atlas_uv: np.ndarray,
    atlas_faces: np.ndarray,
) -> tuple[dict, dict]:
    """All surface arrays of the npz and their statistics."""
    flip_v, flip_err = flip_vertices(template)
    flip_f = flip_faces(faces, flip_v)
    if np.any(flip_f < 0) or np.any(flip_v[flip_v] != np.arange(len(flip_v))):
        raise RuntimeError("the template is not left/right symmetric; cannot mirror its maps")
    corners = mirror_corners(faces, flip_v, flip_f)
    adjacency = face_adjacency(faces)

    vt, ft = compact_uv(atlas_uv, atlas_faces)
    dp_i, dp_stats = body_densepose.part_labels(template, faces, joints, weights, adjacency, flip_f)
    dp_uv, uv_stats = body_densepose.part_uvs(
        template, faces, joints, dp_i, flip_v, flip_f, corners
    )
    chart = body_uv_chart.continuous_chart(
        template, faces, joints, weights, flip_v, flip_f, corners
    )
    arrays = {
        "vt": vt.astype(np.float32),
        "ft": ft.astype(np.int32),
        "dp_I": dp_i.astype(np.uint8),
        "dp_uv": dp_uv.astype(np.float32),
        "cont_vt": chart["vt"].astype(np.float32),
        "cont_ft": chart["ft"].astype(np.int32),
        "cont_v2vt": chart["v2vt"].astype(np.int32),
        "flip_vertex": flip_v.astype(np.int32),
    }
    stats = {"flip_err": flip_err, **dp_stats, **uv_stats, **chart["stats"]}
    return arrays, stats


def report(stats: dict) -> None:
    """Print the surface statistics (quoted by assets/body/README.md)."""
    print(f"flip_vertex: max mirror mismatch {1000 * stats['flip_err']:.4f} mm")
    body_densepose.report(stats)
    body_uv_chart.report(stats)
