"""The body-model file layout: keys, SMPL joint names, validation and the geometry hash.

One place that knows what a valid ``hmrt_body.npz`` holds (docs/DEVELOPING.md, "Body model
contract"), shared by the loader (``model.py``) and the SMPL importer (``smpl_import.py``), so a
converted file is checked by the same rules before it is written.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from hmrt.runtime.errors import InputError

SMPL_JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee",
    "spine2", "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot",
    "neck", "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand", "right_hand",
)  # fmt: skip
SMPL_PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21,
)  # fmt: skip

REQUIRED_KEYS: tuple[str, ...] = (
    "v_template",
    "shapedirs",
    "J_regressor",
    "weights",
    "kintree_table",
    "f",
)
# Per-face / per-vertex surface data of the open model (absent in converted SMPL files).
SURFACE_KEYS: tuple[str, ...] = (
    "vt",
    "ft",
    "dp_I",
    "dp_uv",
    "cont_vt",
    "cont_ft",
    "cont_v2vt",
    "flip_vertex",
    "flip_joint",
)
# ``cont_provenance``: where the continuous chart came from, when it was attached to an imported
# SMPL file (``hmrt body import-smpl --uv-chart``); the bundled model's chart is in its provenance.
TEXT_KEYS: tuple[str, ...] = ("licence", "provenance", "cont_provenance")

CONVERT_HINT = "convert an official SMPL file with: hmrt body import-smpl FILE"


def _fail(source: str | Path, problem: str) -> InputError:
    return InputError(f"{source}: {problem}")


def _text(value: np.ndarray | str | None) -> str | None:
    if value is None:
        return None
    arr = np.asarray(value)
    if arr.dtype.kind not in "US" or arr.size != 1:
        return None
    item = arr.reshape(()).item()
    return item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)


def _floats(arrays: dict, key: str, shape: tuple, source: str | Path) -> np.ndarray:
    """``arrays[key]`` as C-contiguous float32, checked against ``shape`` (None = any size)."""
    arr = np.asarray(arrays[key])
    if arr.dtype.kind not in "fiu":
        raise _fail(source, f"'{key}' has dtype {arr.dtype}, expected numbers")
    _check_shape(arr, key, shape, source)
    return np.ascontiguousarray(arr, dtype=np.float32)


def _ints(arrays: dict, key: str, shape: tuple, source: str | Path, dtype=np.int32) -> np.ndarray:
    arr = np.asarray(arrays[key])
    if arr.dtype.kind not in "iu" and not (arr.dtype.kind == "f" and np.all(arr == np.round(arr))):
        raise _fail(source, f"'{key}' has dtype {arr.dtype}, expected integers")
    _check_shape(arr, key, shape, source)
    return np.ascontiguousarray(arr.astype(np.int64), dtype=dtype)


def _check_shape(arr: np.ndarray, key: str, shape: tuple, source: str | Path) -> None:
    ok = arr.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, arr.shape))
    if not ok:
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise _fail(source, f"'{key}' has shape {arr.shape}, expected {want}")


def _check_index_range(arr: np.ndarray, key: str, upper: int, source: str | Path) -> None:
    if arr.size and (arr.min() < 0 or arr.max() >= upper):
        raise _fail(source, f"'{key}' holds indices outside [0, {upper})")


def parents_from_kintree(kintree: np.ndarray, source: str | Path) -> list[int]:
    """Row 0 of ``kintree_table`` as a Python list; the root's parent (-1 or 2**32-1) -> -1.

    Joints must come after their parents (true for SMPL), so forward kinematics can run in
    index order; anything else is rejected.
    """
    parents = [int(p) for p in np.asarray(kintree)[0]]
    parents[0] = -1
    for i, p in enumerate(parents[1:], start=1):
        if not 0 <= p < i:
            raise _fail(source, f"kintree_table: joint {i} has parent {p}; parents must precede")
    return parents


def validate(arrays: dict, source: str | Path) -> dict:
    """Check a body model's arrays and return them normalised to the contract's dtypes.

    ``arrays`` maps key -> array (an open npz or a dict). The result holds float32 geometry,
    ``parents`` (Python list), ``f`` int32, ``posedirs`` (None when absent or all zero),
    ``joint_names`` (tuple), the text fields and whichever surface arrays are present.
    Raises :class:`InputError` naming ``source`` and the problem.
    """
    missing = [k for k in REQUIRED_KEYS if k not in arrays]
    if missing:
        raise _fail(
            source,
            f"not a body model (missing {', '.join(missing)}); expected the hmrt body layout "
            f"(docs/DEVELOPING.md), or {CONVERT_HINT}",
        )
    v_template = _floats(arrays, "v_template", (None, 3), source)
    n_verts = v_template.shape[0]
    kintree = _ints(arrays, "kintree_table", (2, None), source, dtype=np.int64)
    parents = parents_from_kintree(kintree, source)
    n_joints = len(parents)
    out: dict = {
        "v_template": v_template,
        "shapedirs": _floats(arrays, "shapedirs", (n_verts, 3, None), source),
        "J_regressor": _floats(arrays, "J_regressor", (n_joints, n_verts), source),
        "weights": _floats(arrays, "weights", (n_verts, n_joints), source),
        "parents": parents,
        "f": _ints(arrays, "f", (None, 3), source),
    }
    _check_index_range(out["f"], "f", n_verts, source)
    posedirs = None
    if "posedirs" in arrays:
        posedirs = _floats(arrays, "posedirs", (n_verts, 3, (n_joints - 1) * 9), source)
        if not posedirs.any():
            posedirs = None
    out["posedirs"] = posedirs
    names = arrays.get("joint_names")
    if names is not None:
        names = tuple(str(n) for n in np.asarray(names).reshape(-1))
        if len(names) != n_joints:
            raise _fail(source, f"'joint_names' has {len(names)} names for {n_joints} joints")
    elif n_joints == len(SMPL_JOINT_NAMES):
        names = SMPL_JOINT_NAMES
    else:
        names = tuple(f"joint{i}" for i in range(n_joints))
    out["joint_names"] = names
    licence = _text(arrays["licence"]) if "licence" in arrays else None
    if licence is None and "license" in arrays:
        licence = _text(arrays["license"])
    out["licence"] = licence
    out["provenance"] = _text(arrays["provenance"]) if "provenance" in arrays else None
    out["cont_provenance"] = (
        _text(arrays["cont_provenance"]) if "cont_provenance" in arrays else None
    )
    out.update(_validate_surface(arrays, out, source))
    return out


def _validate_surface(arrays: dict, geo: dict, source: str | Path) -> dict:
    n_verts, n_faces = geo["v_template"].shape[0], geo["f"].shape[0]
    n_joints = len(geo["parents"])
    out: dict = {}
    if "vt" in arrays:
        out["vt"] = _floats(arrays, "vt", (None, 2), source)
    if "ft" in arrays:
        out["ft"] = _ints(arrays, "ft", (n_faces, 3), source)
        if "vt" in out:
            _check_index_range(out["ft"], "ft", len(out["vt"]), source)
    if "dp_I" in arrays:
        out["dp_I"] = _ints(arrays, "dp_I", (n_faces,), source, dtype=np.uint8)
    if "dp_uv" in arrays:
        out["dp_uv"] = _floats(arrays, "dp_uv", (n_faces, 3, 2), source)
    if "cont_vt" in arrays:
        out["cont_vt"] = _floats(arrays, "cont_vt", (None, 2), source)
    if "cont_ft" in arrays:
        out["cont_ft"] = _ints(arrays, "cont_ft", (n_faces, 3), source)
        if "cont_vt" in out:
            _check_index_range(out["cont_ft"], "cont_ft", len(out["cont_vt"]), source)
    if "cont_v2vt" in arrays:
        out["cont_v2vt"] = _ints(arrays, "cont_v2vt", (n_verts,), source)
        if "cont_vt" in out:
            _check_index_range(out["cont_v2vt"], "cont_v2vt", len(out["cont_vt"]), source)
    if "flip_vertex" in arrays:
        out["flip_vertex"] = _ints(arrays, "flip_vertex", (n_verts,), source)
        _check_index_range(out["flip_vertex"], "flip_vertex", n_verts, source)
    if "flip_joint" in arrays:
        out["flip_joint"] = _ints(arrays, "flip_joint", (n_joints,), source)
        _check_index_range(out["flip_joint"], "flip_joint", n_joints, source)
    return out


def geometry_hash(arrays: dict) -> str:
    """Short stable sha256 (16 hex digits) of the arrays that define the body's geometry.

    Covers template, shape and pose bases, regressor, skinning weights, tree and faces in their
    contract dtypes (so float64 or float32 sources agree); an all-zero ``posedirs`` counts as
    absent. ONNX metadata and engine sidecars carry it to detect a body-model mismatch.
    """
    digest = hashlib.sha256(b"hmrt-body-v1")
    parts = [
        ("v_template", np.asarray(arrays["v_template"], np.float32)),
        ("shapedirs", np.asarray(arrays["shapedirs"], np.float32)),
        ("J_regressor", np.asarray(arrays["J_regressor"], np.float32)),
        ("weights", np.asarray(arrays["weights"], np.float32)),
        ("parents", np.asarray(arrays["parents"], np.int64)),
        ("f", np.asarray(arrays["f"], np.int32)),
    ]
    if arrays.get("posedirs") is not None:
        parts.append(("posedirs", np.asarray(arrays["posedirs"], np.float32)))
    for name, arr in parts:
        arr = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"), copy=False)
        digest.update(f"{name}:{arr.dtype.str}:{arr.shape};".encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()[:16]
