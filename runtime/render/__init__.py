"""CPU rendering for hmrt (numba): z-buffer rasterizer, dense maps (masks, parts, IUV), overlays.

Never imports torch: the data engine renders training targets with it and the runtime draws
video overlays with it. Conventions (pixel centres at +0.5, camera +Z forward, Y down) are
those of :mod:`hmrt.runtime.camera`.
"""

from hmrt.runtime.render.maps import (
    continuous_iuv,
    interpolate_corners,
    interpolate_vertices,
    iuv,
    iuv_from_image,
    iuv_image,
    iuv_one_hot,
    location_map,
    part_map,
    render_iuv,
    silhouette,
    uv_raster,
)
from hmrt.runtime.render.overlay import draw_skeleton, render_overlay, vertex_normals, warmup
from hmrt.runtime.render.raster import Raster, rasterize

__all__ = [
    "Raster",
    "continuous_iuv",
    "draw_skeleton",
    "interpolate_corners",
    "interpolate_vertices",
    "iuv",
    "iuv_from_image",
    "iuv_image",
    "iuv_one_hot",
    "location_map",
    "part_map",
    "rasterize",
    "render_iuv",
    "render_overlay",
    "silhouette",
    "uv_raster",
    "vertex_normals",
    "warmup",
]
