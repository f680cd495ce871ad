"""Attach a user's continuous UV chart (DecoMR's "boundary-free" SMPL chart) to an SMPL import.

SMPL's model file carries no UV chart, but DecoMR's UV tables (vertex read-out, reference map,
feature transfer; ``hmrt.train.models.layers.uv_sample``) are built from the body file's
continuous chart ``cont_vt``/``cont_ft``. The official DecoMR weights predict locations on SMPL's
BF chart, which DecoMR's release ships as ``data/uv_sampler/smpl_boundry_free_template.obj``
(spelling sic): ``v`` lines (the template), ``vt u v`` lines, ``f v/vt v/vt v/vt`` triangles. It
is SMPL-derived, so hmrt never ships it; ``hmrt body import-smpl FILE --uv-chart CHART`` reads the
user's copy and stores it in the converted body npz.

Accepted chart files: an OBJ with ``vt`` lines and ``f v/vt`` (or ``v/vt/vn``) triangles (the
official file); an npz holding ``vt (T,2)`` and ``ft (F,3)`` in the OBJ's convention (optional
``f (F,3)``, the faces' mesh vertices; without it ``ft`` row ``i`` is SMPL face ``i``); or an hmrt
body npz with a chart (``cont_vt``/``cont_ft``, e.g. another SMPL import, to reuse its chart for
a male/female model). DecoMR's cached sampler tables (``paras_h0128_w0128_BF.npz``) hold no
per-face texture indices and are refused with the name of the OBJ to pass instead.

UV convention. DecoMR reads the OBJ's ``vt`` as ``(u, v)`` unchanged and puts ``v`` on the UV
image's rows, growing DOWNWARD (``Index_UV_Generator``: row ``= v (H-1)``; head at ``v ~ 0.2``,
feet at ``v ~ 0.9``). hmrt's charts have ``v`` growing toward the head (OBJ convention; row
``<-> 1 - v``; ``train/models/decomr/config.py``, ``uv_convention``). So the stored chart is
``cont_vt = (u, 1 - v)``: the same picture, head on top, subject's left at ``u > 0.5``. hmrt
models with ``uv_convention="official"`` read the released CNet's V output as ``1 - V``, which
is the same flip. Only ``v`` changes; ``u`` and the per-face texture indices are kept.

Topology. The chart must be for the mesh being imported: its vertex count (``v`` lines) and
face count equal the SMPL file's, and its faces are SMPL's triangles. They are matched as vertex
triples, so a chart listing SMPL's faces in another order, or with rotated corners, still maps
onto ``f`` exactly; anything else is refused with one line naming the file and the fix.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hmrt.runtime.errors import InputError

# What to pass, quoted in refusals: the file of DecoMR's release the official weights need.
OFFICIAL_CHART = "data/uv_sampler/smpl_boundry_free_template.obj"
CHART_HINT = f"pass DecoMR's BF chart of SMPL ({OFFICIAL_CHART} from its data package)"
UV_TOLERANCE = 1e-4  # texture coordinates may overshoot [0, 1] by rounding only
MAX_CHART_BYTES = 512 * 2**20  # the official OBJ is 0.8 MB; refuse anything absurd early


@dataclass(frozen=True)
class UVChart:
    """A chart as read from its file, before it is matched to a body.

    ``vt (T,2)`` float64 texture coordinates as stored in the file; ``face_vt (F,3)`` int64
    texture index per face corner; ``face_v (F,3)`` int64 mesh vertex per face corner, or None
    (then face ``i`` is the body's face ``i``); ``n_verts``: the mesh's vertex count when the
    file states it (OBJ ``v`` lines), else None; ``v_down``: True when ``v`` grows downward
    (DecoMR's OBJ convention: stored as ``1 - v``), False for an hmrt chart; ``kind``: a short
    description of the format for the provenance text.
    """

    vt: np.ndarray
    face_vt: np.ndarray
    face_v: np.ndarray | None
    n_verts: int | None
    v_down: bool
    kind: str


def _fail(path: Path, problem: str) -> InputError:
    return InputError(f"{path}: {problem}")


def _obj_index(token: str, count: int, what: str, path: Path, line_no: int) -> int:
    """A 1-based (or negative, relative) OBJ index -> 0-based, checked against ``count``."""
    try:
        value = int(token)
    except ValueError:
        raise _fail(path, f"line {line_no}: bad {what} index {token!r} in a face") from None
    index = value - 1 if value > 0 else count + value
    if value == 0 or not 0 <= index < count:
        raise _fail(path, f"line {line_no}: face refers to {what} {value}, but only {count} exist")
    return index


def read_obj_chart(path: Path, text: str) -> UVChart:
    """Parse an OBJ's ``v`` count, ``vt`` lines and ``f v/vt`` triangles (other lines ignored).

    Indices may be 1-based or negative (relative, as OBJ allows); a face must be a triangle and
    every corner must name a texture coordinate.
    """
    n_verts = 0
    vt: list[tuple[float, float]] = []
    face_v: list[tuple[int, int, int]] = []
    face_vt: list[tuple[int, int, int]] = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        tag = parts[0]
        if tag == "v":
            n_verts += 1
        elif tag == "vt":
            try:
                vt.append((float(parts[1]), float(parts[2])))
            except (IndexError, ValueError):
                raise _fail(
                    path, f"line {line_no}: 'vt' needs two numbers: {line.strip()!r}"
                ) from None
        elif tag == "f":
            corners = parts[1:]
            if len(corners) != 3:
                raise _fail(
                    path,
                    f"line {line_no}: a face with {len(corners)} corners; a chart of SMPL's "
                    "mesh has triangles only",
                )
            vs, ts = [], []
            for corner in corners:
                fields = corner.split("/")
                if len(fields) < 2 or not fields[1]:
                    raise _fail(
                        path,
                        f"line {line_no}: face corner {corner!r} has no texture index "
                        "(expected 'f v/vt v/vt v/vt'); not a UV chart",
                    )
                vs.append(_obj_index(fields[0], n_verts, "vertex", path, line_no))
                ts.append(_obj_index(fields[1], len(vt), "texture coordinate", path, line_no))
            face_v.append((vs[0], vs[1], vs[2]))
            face_vt.append((ts[0], ts[1], ts[2]))
    if not vt or not face_vt:
        raise _fail(
            path,
            f"no UV chart in this file ({len(vt)} 'vt' lines, {len(face_vt)} faces with texture "
            f"indices); {CHART_HINT}",
        )
    return UVChart(
        vt=np.array(vt, np.float64),
        face_vt=np.array(face_vt, np.int64),
        face_v=np.array(face_v, np.int64),
        n_verts=n_verts or None,
        v_down=True,
        kind="OBJ vt/f lines",
    )


def _npz_int_faces(arrays: dict, key: str, path: Path) -> np.ndarray:
    arr = np.asarray(arrays[key])
    if arr.ndim != 2 or arr.shape[1] != 3 or arr.dtype.kind not in "iu":
        raise _fail(
            path, f"'{key}' has shape {arr.shape} and dtype {arr.dtype}; expected (F, 3) ints"
        )
    return arr.astype(np.int64)


def read_npz_chart(path: Path) -> UVChart:
    """An npz chart: an hmrt body's ``cont_vt``/``cont_ft`` or raw ``vt``/``ft`` (see module)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except ValueError as exc:
        raise _fail(path, f"not a plain-array npz ({exc}); {CHART_HINT}") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise _fail(path, f"not a readable npz, corrupt or truncated ({exc})") from None
    if "texcoords" in arrays and "vt2v" in arrays:
        raise _fail(
            path,
            "DecoMR's cached sampler tables hold no per-face texture indices; pass the chart "
            f"they were computed from, {Path(OFFICIAL_CHART).name} in the same folder",
        )
    if "cont_vt" in arrays and "cont_ft" in arrays:
        vt_key, ft_key, v_down, kind = "cont_vt", "cont_ft", False, "hmrt body npz cont_vt/cont_ft"
        origin = np.asarray(arrays.get("cont_provenance", ""))
        if origin.dtype.kind == "U" and origin.size == 1 and str(origin.reshape(()).item()):
            kind += f"; there: {origin.reshape(()).item()}"  # keep the chain to the source
    elif "vt" in arrays and "ft" in arrays and "v_template" not in arrays:
        vt_key, ft_key, v_down, kind = "vt", "ft", True, "npz vt/ft"
    else:
        raise _fail(
            path,
            f"no UV chart in this npz (keys: {', '.join(sorted(arrays)) or 'none'}); expected "
            f"'vt' and 'ft', or an hmrt body file with 'cont_vt' and 'cont_ft'; {CHART_HINT}",
        )
    vt = np.asarray(arrays[vt_key])
    if vt.ndim != 2 or vt.shape[1] != 2 or vt.dtype.kind not in "fiu":
        raise _fail(path, f"'{vt_key}' has shape {vt.shape} and dtype {vt.dtype}; expected (T, 2)")
    face_vt = _npz_int_faces(arrays, ft_key, path)
    face_v = _npz_int_faces(arrays, "f", path) if "f" in arrays else None
    if face_vt.size and (face_vt.min() < 0 or face_vt.max() >= len(vt)):
        raise _fail(path, f"'{ft_key}' refers to texture coordinates outside [0, {len(vt)})")
    n_verts = len(arrays["v_template"]) if "v_template" in arrays else None
    return UVChart(vt.astype(np.float64), face_vt, face_v, n_verts, v_down, kind)


def read_uv_chart(path: str | os.PathLike) -> UVChart:
    """Read a chart file (OBJ or npz, told apart by content); InputError names the problem."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise _fail(path, f"is a folder; {CHART_HINT}")
        if size > MAX_CHART_BYTES:
            raise _fail(
                path, f"{size / 2**20:.0f} MB is far too large for a UV chart; {CHART_HINT}"
            )
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise _fail(path, f"UV chart file not found; {CHART_HINT}") from None
    except OSError as exc:
        raise _fail(path, f"cannot read the UV chart ({exc.strerror or exc})") from None
    if data.startswith(b"PK"):
        return read_npz_chart(path)
    if b"\x00" in data[:4096]:
        raise _fail(path, f"a binary file, neither an OBJ nor an npz; {CHART_HINT}")
    return read_obj_chart(path, data.decode("utf-8", errors="replace"))


def _topology_error(path: Path, found: str, n_verts: int, n_faces: int) -> InputError:
    return _fail(
        path,
        f"UV chart does not match the SMPL mesh being imported ({found}; the SMPL file has "
        f"{n_verts} vertices and {n_faces} faces); {CHART_HINT}, or import without --uv-chart",
    )


def _face_keys(faces: np.ndarray, n_verts: int) -> np.ndarray:
    """One int64 per triangle, the same for any order of its three vertices."""
    s = np.sort(faces, axis=1)
    return (s[:, 0] * n_verts + s[:, 1]) * n_verts + s[:, 2]


def match_faces(
    chart: UVChart, faces: np.ndarray, n_verts: int, path: Path
) -> tuple[np.ndarray, int]:
    """The chart's texture indices per corner of the body's faces: ``(cont_ft (F,3), moved)``.

    ``moved`` counts the body faces whose chart face sat at another position or had its corners
    in another order. Refuses (one line) a chart whose vertex or face count differs, or whose
    triangles are not exactly the body's.
    """
    faces = np.asarray(faces, np.int64)
    n_faces = len(faces)
    if chart.n_verts is not None and chart.n_verts != n_verts:
        raise _topology_error(path, f"its mesh has {chart.n_verts} vertices", n_verts, n_faces)
    if len(chart.face_vt) != n_faces:
        raise _topology_error(path, f"it has {len(chart.face_vt)} faces", n_verts, n_faces)
    if chart.face_v is None:  # faces given in the body's order (a raw npz without 'f')
        return chart.face_vt.copy(), 0
    cv = chart.face_v
    if cv.min() < 0 or cv.max() >= n_verts:
        raise _topology_error(path, f"its faces use vertex {int(cv.max()) + 1}", n_verts, n_faces)
    if np.array_equal(cv, faces):
        return chart.face_vt.copy(), 0
    body_keys, chart_keys = _face_keys(faces, n_verts), _face_keys(cv, n_verts)
    order = np.argsort(chart_keys, kind="stable")
    sorted_keys = chart_keys[order]
    pos = np.clip(np.searchsorted(sorted_keys, body_keys), 0, n_faces - 1)
    found = sorted_keys[pos] == body_keys
    if not found.all() or len(np.unique(chart_keys)) != n_faces:
        bad = int(np.count_nonzero(~found))
        first = int(np.argmax(~found)) if bad else 0
        detail = (
            f"{bad} of SMPL's {n_faces} faces are not in it (first: face {first}, vertices "
            f"{tuple(int(x) for x in faces[first])})"
            if bad
            else "it lists a triangle twice"
        )
        raise _topology_error(path, detail, n_verts, n_faces)
    match = order[pos]  # chart face of each body face
    cv, ct = cv[match], chart.face_vt[match]
    cont_ft = np.empty_like(faces)
    rows = np.arange(n_faces)
    for k in range(3):  # the chart corner that holds body corner k's vertex
        cont_ft[:, k] = ct[rows, np.argmax(cv == faces[:, k : k + 1], axis=1)]
    moved = int(np.count_nonzero((match != rows) | np.any(cv != faces, axis=1)))
    return cont_ft, moved


def chart_arrays(
    chart: UVChart, faces: np.ndarray, n_verts: int, path: str | os.PathLike
) -> tuple[dict, str]:
    """``cont_vt``, ``cont_ft``, ``cont_v2vt`` for a body with ``faces``, and a provenance line.

    ``cont_vt = (u, 1 - v)`` for DecoMR's convention (module docstring), unchanged for an hmrt
    chart; ``cont_v2vt`` picks each vertex's lowest texture index. Refuses texture coordinates
    outside ``[0, 1]`` (the UV image would crop them).
    """
    path = Path(path)
    cont_ft, moved = match_faces(chart, faces, n_verts, path)
    used = np.unique(cont_ft)
    uv = chart.vt[used]
    if uv.min() < -UV_TOLERANCE or uv.max() > 1.0 + UV_TOLERANCE:
        raise _fail(
            path,
            f"texture coordinates span [{uv.min():.3f}, {uv.max():.3f}], outside the unit square "
            f"a DecoMR UV map covers; {CHART_HINT}",
        )
    vt = np.clip(chart.vt, 0.0, 1.0)
    if chart.v_down:
        vt = np.stack([vt[:, 0], 1.0 - vt[:, 1]], axis=1)
    v2vt = np.full(n_verts, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(v2vt, np.asarray(faces, np.int64).ravel(), cont_ft.ravel())
    v2vt[v2vt == np.iinfo(np.int64).max] = 0  # a vertex in no face: any valid index
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    order = "in SMPL's face order" if not moved else f"{moved} faces reordered to SMPL's order"
    flip = "stored as (u, 1 - v): v toward the head" if chart.v_down else "hmrt convention kept"
    provenance = (
        f"UV chart from {path.name} (sha256 {digest}..., {chart.kind}): {len(chart.vt)} texture "
        f"coordinates over {len(cont_ft)} faces, {order}; {flip}"
    )
    arrays = {
        "cont_vt": vt.astype(np.float32),
        "cont_ft": cont_ft.astype(np.int32),
        "cont_v2vt": v2vt.astype(np.int32),
    }
    return arrays, provenance
