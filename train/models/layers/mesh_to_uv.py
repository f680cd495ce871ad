"""Mesh -> UV location map (DecoMR's ``get_UV_map``, BoBW's ``UV_l``) as one constant gather.

Each texel of an ``S x S`` map covered by the body's continuous UV chart holds the 3D point at
its barycentrics on the covering mesh face: ``X[p] = sum_c bary[p, c] * V[index[p, c]]``; texels
off the chart are 0 (shared/research/seed-bobw.md §1.4(e), §4.3). The table comes from the
project's rasterizer (:func:`hmrt.runtime.render.uv_raster`), so :class:`MeshToUV` equals
:func:`hmrt.runtime.render.location_map` of the same vertices, and shares the layout of
:func:`hmrt.train.models.layers.uv_sample.build_uv_tables` (row ``<-> 1 - v``, head on top;
texel ``(r, c)`` centred at ``u = (c + 0.5)/S, v = 1 - (r + 0.5)/S``).

Deployable as it stands: fixed shapes, a Gather with a constant index, a Mul and a ReduceSum
(no scatter, no data-dependent shapes). An FP32 island: the weighted sum of positions is
precision-sensitive (FP16 loses millimetres at metre scale).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from hmrt.train.models.layers.precision import Fp32Module


@dataclass(frozen=True)
class MeshToUVTable:
    """Per texel of an ``S x S`` map (flattened row-major, ``p = row*S + column``).

    ``index`` (S*S, 3) int64: the covering face's vertices (0 off the chart);
    ``bary`` (S*S, 3) float32: their barycentric weights (0 off the chart);
    ``part`` (S*S,) int64: the face's DensePose part 1..24 (0 off the chart or without ``dp_I``);
    ``coverage`` (S, S) float32: 1 on the chart. Arrays are read-only (shared via the cache).
    """

    uv_size: int
    index: np.ndarray
    bary: np.ndarray
    part: np.ndarray
    coverage: np.ndarray


_TABLE_CACHE: dict[str, MeshToUVTable] = {}


def _as_body(body):
    """A ``BodyModel`` for None / a path; any object with the body arrays passes unchanged."""
    from hmrt.runtime.body.model import BodyModel
    from hmrt.runtime.errors import InputError

    if body is None or isinstance(body, (str, os.PathLike)):
        body = BodyModel(body)
    if getattr(body, "cont_vt", None) is None or getattr(body, "cont_ft", None) is None:
        raise InputError(
            f"{getattr(body, 'path', 'body')}: no continuous UV chart (cont_vt, cont_ft) for a "
            "mesh-to-UV table; for an imported SMPL file attach DecoMR's BF chart: hmrt body "
            "import-smpl SMPL_FILE --uv-chart smpl_boundry_free_template.obj"
        )
    return body


def mesh_to_uv_table(body=None, uv_size: int = 128) -> MeshToUVTable:
    """Rasterise the body's continuous chart (``cont_vt``/``cont_ft``) into a gather table.

    ``body``: a ``BodyModel`` (or any object with ``faces``, ``cont_vt``, ``cont_ft``,
    ``dp_I``), a body npz path, or None (bundled body). Cached per chart, faces, parts and size.
    """
    body = _as_body(body)
    dp_i = getattr(body, "dp_I", None)
    digest = hashlib.sha256(f"{int(uv_size)}:{dp_i is None}".encode())
    for arr in (body.faces, body.cont_vt, body.cont_ft, *(() if dp_i is None else (dp_i,))):
        digest.update(np.ascontiguousarray(arr).tobytes())
    key = digest.hexdigest()
    if key not in _TABLE_CACHE:
        if len(_TABLE_CACHE) >= 8:
            _TABLE_CACHE.pop(next(iter(_TABLE_CACHE)))
        _TABLE_CACHE[key] = _build_table(body, int(uv_size))
    return _TABLE_CACHE[key]


def _build_table(body, uv_size: int) -> MeshToUVTable:
    from hmrt.runtime.render import uv_raster

    raster = uv_raster(body.cont_vt, body.cont_ft, uv_size)
    fid = np.asarray(raster.face_id).reshape(-1)
    on = fid >= 0
    faces = np.asarray(body.faces, dtype=np.int64)
    index = np.zeros((fid.size, 3), dtype=np.int64)
    index[on] = faces[fid[on]]
    bary = np.zeros((fid.size, 3), dtype=np.float32)
    bary[on] = np.asarray(raster.bary, dtype=np.float32).reshape(-1, 3)[on]
    part = np.zeros(fid.size, dtype=np.int64)
    if getattr(body, "dp_I", None) is not None:
        part[on] = np.asarray(body.dp_I, dtype=np.int64)[fid[on]]
    coverage = on.reshape(uv_size, uv_size).astype(np.float32)
    for arr in (index, bary, part, coverage):
        arr.setflags(write=False)
    return MeshToUVTable(uv_size, index, bary, part, coverage)


class MeshToUV(Fp32Module):
    """``forward(vertices (N,V,3)) -> location map (N,3,S,S)``, 0 off the chart.

    The table's ``index``/``bary`` are non-persistent buffers: constants of the body, rebuilt
    from the body file and never stored in checkpoints.
    """

    def __init__(self, table: MeshToUVTable):
        super().__init__()
        self.uv_size = int(table.uv_size)
        index = torch.tensor(np.asarray(table.index), dtype=torch.int64)
        self.register_buffer("index", index.reshape(-1), persistent=False)
        self.register_buffer(
            "bary", torch.tensor(np.asarray(table.bary), dtype=torch.float32), persistent=False
        )

    def extra_repr(self) -> str:
        return f"uv_size={self.uv_size}"

    def forward(self, vertices: Tensor) -> Tensor:
        n, c = vertices.shape[0], vertices.shape[2]
        s = self.uv_size
        # Channels first, then one Gather of the 3 corners of every texel: (N, C, S*S, 3).
        corners = vertices.transpose(1, 2).index_select(2, self.index).reshape(n, c, s * s, 3)
        return (corners * self.bary).sum(dim=-1).reshape(n, c, s, s)


__all__ = ["MeshToUV", "MeshToUVTable", "mesh_to_uv_table"]
