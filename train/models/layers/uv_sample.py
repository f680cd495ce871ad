"""UV location map -> mesh vertices (DecoMR's ``resample``), as one constant gather table.

A vertex's position is read from the location map ``X (N,3,S,S)`` by bilinear interpolation at
its UV coordinate (DecoMR Eq. 3); a vertex on a UV seam has one UV copy per side and gets the
mean over its copies (official ``Index_UV_Generator.resample``: ``grid_sample`` at every vt,
then ``index_add_`` over ``vt2v`` / ``vt_count``; shared/research/seed-decomr.md §1.5, §4.2).

Both steps are linear with constant coefficients, so :func:`build_uv_sampling_table` folds the
bilinear corner weights and the seam average into ONE table ``index (V,K)``, ``weight (V,K)``:
``vertex[v] = sum_k weight[v,k] * X_flat[index[v,k]]``. :class:`UVToVertices` (training form)
applies it with a gather and a weighted sum; export uses the same table
(``hmrt.export.rewrites.uv_sample_gather``), so training and deployment agree by construction.
:class:`UVToVerticesGrid` is the official-style form (GridSample + copy average) for targets
where GridSample is the faster op; it equals the table form to float32 rounding.

Conventions (hmrt's rasterizer, ``runtime.render.uv_raster``): row ``<-> 1 - v`` (head on top),
and with ``align_corners=False`` (default) texel ``(r, c)`` is centred at
``u = (c + 0.5)/S, v = 1 - (r + 0.5)/S``: exactly where ``runtime.render.location_map`` evaluates
the surface. ``align_corners=True`` is the official convention (centres at ``c/(S-1)``), for
maps rasterised that way. A sampler whose convention differs from the rasterizer's is what made
the official code's read-out error jump from 1.3 mm to 6.5 mm on modern PyTorch (§6.8).

Deviation from the official code, on purpose: the official GT location map is "expanded" (empty
texels in a vt's bilinear footprint copy the vertex), so bilinear reads never mix in texels off
the chart. hmrt's location maps are not expanded, and texels off the chart are unsupervised
(garbage) in a predicted map. With ``coverage`` given, the table therefore drops the corners
that lie off the chart and renormalises each copy's remaining weights to 1. Without
``coverage`` the table is exactly the official ``grid_sample`` (zeros padding) + average.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from hmrt.train.models.layers.precision import Fp32Module


def uv_to_pixel(uv: np.ndarray, uv_size: int, align_corners: bool = False) -> np.ndarray:
    """UV ``(..., 2)`` -> continuous texel coordinates ``(..., 2)`` = (column, row), float64."""
    uv = np.asarray(uv, dtype=np.float64)
    u, down = uv[..., 0], 1.0 - uv[..., 1]
    if align_corners:
        return np.stack([u * (uv_size - 1), down * (uv_size - 1)], axis=-1)
    return np.stack([u * uv_size - 0.5, down * uv_size - 0.5], axis=-1)


def vertex_uv_copies(faces: np.ndarray, uv_faces: np.ndarray, uv_coords: np.ndarray) -> list:
    """All UV copies of each mesh vertex: a list of V arrays ``(k_v, 2)`` (k_v >= 1 on a mesh
    whose every vertex is in some face). Face ``i`` of ``uv_faces`` is mesh face ``i``.
    """
    pairs = np.unique(np.stack([np.ravel(faces), np.ravel(uv_faces)], axis=1), axis=0)
    n_verts = int(np.max(faces)) + 1
    splits = np.searchsorted(pairs[:, 0], np.arange(1, n_verts))
    coords = np.asarray(uv_coords, dtype=np.float64)
    return [coords[vt] for vt in np.split(pairs[:, 1], splits)]


def _copy_weights(
    pixel: np.ndarray, uv_size: int, coverage: np.ndarray | None
) -> tuple[list[int], list[float]]:
    """Bilinear texel indices and weights of one UV copy (zeros outside; optional renorm)."""
    x0, y0 = int(np.floor(pixel[0])), int(np.floor(pixel[1]))
    fx, fy = pixel[0] - x0, pixel[1] - y0
    index, weight = [], []
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy),
                      (1, 1, fx * fy)):  # fmt: skip
        x, y = x0 + dx, y0 + dy
        if not (0 <= x < uv_size and 0 <= y < uv_size) or w <= 0.0:
            continue
        if coverage is not None and not coverage[y, x]:
            continue
        index.append(y * uv_size + x)
        weight.append(w)
    total = sum(weight)
    if coverage is not None and total > 0.0:
        weight = [w / total for w in weight]
    return index, weight


def snap_to_chart(copies: Sequence[np.ndarray], coverage: np.ndarray, uv_size: int) -> list:
    """Move each UV copy whose bilinear footprint misses the chart to its nearest covered texel.

    Such copies (thin parts such as fingers, where the chart is narrower than a texel) would
    otherwise read only off-chart texels. Snapped to a texel centre, the copy reads exactly that
    texel in both the table and the GridSample form, so the two stay equal.
    """
    cover = np.asarray(coverage, dtype=bool)
    rows, cols = np.nonzero(cover)
    centres = np.stack([cols, rows], axis=1).astype(np.float64)
    out = []
    for uvs in copies:
        uvs = np.array(uvs, dtype=np.float64).reshape(-1, 2)
        for j, pixel in enumerate(uv_to_pixel(uvs, uv_size)):
            if _copy_weights(pixel, uv_size, cover)[0]:
                continue
            c, r = centres[np.argmin(((centres - pixel) ** 2).sum(axis=1))]
            uvs[j] = ((c + 0.5) / uv_size, 1.0 - (r + 0.5) / uv_size)
        out.append(uvs)
    return out


def build_uv_sampling_table(
    vertex_uvs: np.ndarray | Sequence[np.ndarray],
    uv_size: int,
    coverage: np.ndarray | None = None,
    align_corners: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Fold bilinear sampling and the seam average into ``(index (V,K) int64, weight (V,K) f32)``.

    ``vertex_uvs``: ``(V, 2)`` (one UV per vertex) or V arrays ``(k_v, 2)`` (all copies of a
    vertex, e.g. from :func:`vertex_uv_copies`). ``coverage (S,S)`` bool: texels on the chart
    (see the module docstring); a copy with no covered corner is left out of its vertex's mean,
    and a vertex with none at all keeps plain bilinear weights. Index = ``row*S + column`` into
    the flattened map; rows are padded with index 0, weight 0.
    """
    copies = [np.reshape(c, (-1, 2)) for c in vertex_uvs]
    cover = None if coverage is None else np.asarray(coverage, dtype=bool)
    rows: list[dict[int, float]] = []
    for uvs in copies:
        pixels = uv_to_pixel(uvs, uv_size, align_corners)
        parts = [_copy_weights(p, uv_size, cover) for p in pixels]
        parts = [p for p in parts if p[0]] if cover is not None else parts
        if not parts:  # nothing of this vertex lies on the chart: fall back to plain bilinear
            parts = [_copy_weights(p, uv_size, None) for p in pixels]
        row: dict[int, float] = {}
        for index, weight in parts:
            for i, w in zip(index, weight):
                row[i] = row.get(i, 0.0) + w / len(parts)
        rows.append(row)
    k = max(1, max(len(r) for r in rows))
    index = np.zeros((len(rows), k), dtype=np.int64)
    weight = np.zeros((len(rows), k), dtype=np.float32)
    for v, row in enumerate(rows):
        items = sorted(row.items())
        index[v, : len(items)] = [i for i, _ in items]
        weight[v, : len(items)] = [w for _, w in items]
    return index, weight


@dataclass
class UVTables:
    """Everything DecoMR-style models need about a body's continuous UV chart at one size.

    ``index``/``weight`` (V,K): the sampling table; ``copy_uv`` (T,2) float32: every UV copy of
    every vertex; ``copy_index``/``copy_weight`` (V,Kc): each vertex's copies and 1/k_v weights
    (for :class:`UVToVerticesGrid`); ``coverage`` (S,S) float32: 1 on texels of the chart (a
    loss weight for location maps); ``ref_map`` (3,S,S) float32: the template (T-pose) location
    map in metres, body frame (Y up), uncentred; 0 off the chart.
    """

    uv_size: int
    align_corners: bool
    index: np.ndarray
    weight: np.ndarray
    copy_uv: np.ndarray
    copy_index: np.ndarray
    copy_weight: np.ndarray
    coverage: np.ndarray
    ref_map: np.ndarray


_TABLE_CACHE: dict[str, UVTables] = {}


def build_uv_tables(body=None, uv_size: int = 128, renormalise: bool = True) -> UVTables:
    """Build :class:`UVTables` from an hmrt body npz (a ``BodyModel``, a path, or None = bundled).

    Uses the body's ``cont_vt``/``cont_ft`` chart and ``v_template``; the reference map comes
    from the project's rasterizer (``runtime.render.uv_raster`` + ``location_map``), whose
    half-texel convention fixes ``align_corners=False``. Works for any body in the hmrt layout
    (bundled open model or an imported SMPL npz); nothing is read from SMPL files directly.
    Results are cached per chart, template and size, with read-only arrays.
    """
    from hmrt.runtime.body.model import BodyModel
    from hmrt.runtime.errors import InputError

    if not isinstance(body, BodyModel):
        body = BodyModel(body)
    if body.cont_vt is None or body.cont_ft is None:
        raise InputError(
            f"{body.path}: no continuous UV chart (cont_vt, cont_ft) for UV tables; for an "
            "imported SMPL file attach DecoMR's BF chart: hmrt body import-smpl SMPL_FILE "
            "--uv-chart smpl_boundry_free_template.obj"
        )
    digest = hashlib.sha256(f"{uv_size}:{renormalise}".encode())
    for arr in (body.v_template, body.faces, body.cont_vt, body.cont_ft):
        digest.update(np.ascontiguousarray(arr).tobytes())
    key = digest.hexdigest()
    if key not in _TABLE_CACHE:  # a model build asks several times (ref map, sampler)
        if len(_TABLE_CACHE) >= 8:
            _TABLE_CACHE.pop(next(iter(_TABLE_CACHE)))
        _TABLE_CACHE[key] = _build_uv_tables(body, uv_size, renormalise)
    return _TABLE_CACHE[key]


def _build_uv_tables(body, uv_size: int, renormalise: bool) -> UVTables:
    from hmrt.runtime.render import location_map, uv_raster

    raster = uv_raster(body.cont_vt, body.cont_ft, uv_size)
    coverage = raster.face_id >= 0
    ref_map = location_map(raster, body.faces, body.v_template).transpose(2, 0, 1)
    copies = vertex_uv_copies(body.faces, body.cont_ft, body.cont_vt)
    if renormalise:
        copies = snap_to_chart(copies, coverage, uv_size)
    index, weight = build_uv_sampling_table(copies, uv_size, coverage if renormalise else None)
    counts = np.array([len(c) for c in copies])
    copy_index = np.zeros((len(copies), counts.max()), dtype=np.int64)
    copy_weight = np.zeros(copy_index.shape, dtype=np.float32)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    for j in range(counts.max()):
        has = counts > j
        copy_index[has, j] = start[has] + j
        copy_weight[has, j] = 1.0 / counts[has]
    tables = UVTables(
        uv_size=int(uv_size),
        align_corners=False,
        index=index,
        weight=weight,
        copy_uv=np.concatenate(copies).astype(np.float32),
        copy_index=copy_index,
        copy_weight=copy_weight,
        coverage=coverage.astype(np.float32) if renormalise else np.ones_like(coverage, np.float32),
        ref_map=np.ascontiguousarray(ref_map, dtype=np.float32),
    )
    for value in vars(tables).values():  # shared between callers through the cache
        if isinstance(value, np.ndarray):
            value.setflags(write=False)
    return tables


def _table_arrays(table: UVTables | tuple[np.ndarray, np.ndarray]) -> tuple[Tensor, Tensor]:
    index, weight = (table.index, table.weight) if isinstance(table, UVTables) else table
    return torch.tensor(np.asarray(index), dtype=torch.int64), torch.tensor(
        np.asarray(weight), dtype=torch.float32
    )


class UVToVertices(Fp32Module):
    """``forward(loc_map (N,3,S,S)) -> vertices (N,V,3)`` with the constant sampling table.

    ``table``: a :class:`UVTables` (needed for ``--uv-sample grid``) or ``(index, weight)``
    arrays ``(V,K)``. The table is a pair of
    non-persistent buffers (rebuilt from the body file, not stored in checkpoints). An FP32
    island: the weighted sums of positions are the read-out's precision-sensitive part.
    """

    def __init__(self, table: UVTables | tuple[np.ndarray, np.ndarray]):
        super().__init__()
        # Kept (plain attribute, not state) so export can build the GridSample form from it.
        self.tables = table if isinstance(table, UVTables) else None
        index, weight = _table_arrays(table)
        self.register_buffer("index", index, persistent=False)
        self.register_buffer("weight", weight, persistent=False)

    def forward(self, loc_map: Tensor) -> Tensor:
        n, c = loc_map.shape[0], loc_map.shape[1]
        flat = loc_map.reshape(n, c, -1)
        picked = flat.index_select(2, self.index.reshape(-1)).reshape(n, c, *self.index.shape)
        return (picked * self.weight).sum(dim=-1).transpose(1, 2)


class UVToVerticesGrid(Fp32Module):
    """The official-style read-out: ``grid_sample`` at every UV copy, then the copy mean.

    ``align_corners`` is explicit: the table's convention (hmrt maps: False; the official
    maps: True, which the official torch-1.1 code got by default). With a non-trivial
    ``coverage`` the map and the coverage are sampled together and divided, which equals the
    renormalised table; with ``coverage`` all ones it is exactly the official ``resample``.
    """

    def __init__(self, tables: UVTables):
        super().__init__()
        self.align_corners = bool(tables.align_corners)
        grid = torch.tensor(tables.copy_uv) * 2.0 - 1.0
        grid[:, 1] = -grid[:, 1]  # row <-> 1 - v: grid y = 2(1 - v) - 1
        self.register_buffer("grid", grid.reshape(1, 1, -1, 2), persistent=False)
        self.register_buffer("copy_index", torch.tensor(tables.copy_index), persistent=False)
        self.register_buffer("copy_weight", torch.tensor(tables.copy_weight), persistent=False)
        cover = torch.tensor(tables.coverage, dtype=torch.float32)
        self.renormalise = bool((cover < 1.0).any())
        self.register_buffer("coverage", cover.reshape(1, 1, *cover.shape), persistent=False)

    def forward(self, loc_map: Tensor) -> Tensor:
        n = loc_map.shape[0]
        grid = self.grid.expand(n, -1, -1, -1)
        if self.renormalise:
            cover = self.coverage.expand(n, -1, -1, -1)
            maps = torch.cat([loc_map * cover, cover], dim=1)
        else:
            maps = loc_map
        sampled = F.grid_sample(
            maps, grid, mode="bilinear", padding_mode="zeros", align_corners=self.align_corners
        ).squeeze(2)  # (N, C[+1], T)
        if self.renormalise:
            sampled = sampled[:, :-1] / sampled[:, -1:].clamp(min=1e-6)
        picked = sampled.index_select(2, self.copy_index.reshape(-1))
        picked = picked.reshape(n, sampled.shape[1], *self.copy_index.shape)
        return (picked * self.copy_weight).sum(dim=-1).transpose(1, 2)


__all__ = [
    "UVTables",
    "UVToVertices",
    "UVToVerticesGrid",
    "build_uv_sampling_table",
    "build_uv_tables",
    "snap_to_chart",
    "uv_to_pixel",
    "vertex_uv_copies",
]
