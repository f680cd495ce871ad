"""Convert a user's official SMPL file (.pkl 1.0/1.1 or .npz) to hmrt's body npz, safely.

Official SMPL pickles hold chumpy objects and a scipy.sparse ``J_regressor``, written by
Python 2. They are read here without chumpy, and without trusting the pickle: a restricted
``pickle.Unpickler`` resolves only numpy array reconstruction, scipy sparse matrix classes and
chumpy classes, the latter two mapped to inert stand-ins that merely keep their state. Any
other global (``os.system``, ``builtins.eval``, ...) is refused before anything runs. Sparse
matrices are densified with numpy, so scipy is not needed either. Object arrays inside an npz
go through the same unpickler.
"""

from __future__ import annotations

import copyreg
import hashlib
import importlib
import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np

from hmrt.runtime.atomic import atomic_path
from hmrt.runtime.body.layout import REQUIRED_KEYS, SMPL_JOINT_NAMES, validate
from hmrt.runtime.errors import InputError

SMPL_LICENCE = (
    "SMPL body model converted from the user's own file; use is governed by the SMPL Model "
    "License the user accepted (non-commercial unless licensed through Meshcapade); "
    "do not redistribute"
)
CHART_LICENCE = (
    "Its continuous UV chart (cont_vt, cont_ft) comes from the user's copy of a chart of SMPL's "
    "mesh (DecoMR's boundary-free chart is derived from SMPL): same terms, do not redistribute"
)
# Largest dense array a sparse matrix may expand to (SMPL's regressor has 24 x 6890 entries).
MAX_DENSE_ELEMENTS = 50_000_000


class _ChumpyArray:
    """Inert stand-in for any chumpy class: keeps the pickled state, whose ``x`` is the array."""

    def __init__(self, *args, **kwargs):
        self.state: dict = {}

    def __setstate__(self, state) -> None:
        self.state = state if isinstance(state, dict) else {}


class _SparseMatrix:
    """Inert stand-in for a scipy.sparse matrix: keeps its state, densified with numpy."""

    format = ""

    def __init__(self, *args, **kwargs):
        self.state: dict = {}

    def __setstate__(self, state) -> None:
        self.state = state if isinstance(state, dict) else {}


class _CscMatrix(_SparseMatrix):
    format = "csc"


class _CsrMatrix(_SparseMatrix):
    format = "csr"


class _CooMatrix(_SparseMatrix):
    format = "coo"


_SPARSE_CLASSES = {
    f"{fmt}_{kind}": cls
    for fmt, cls in (("csc", _CscMatrix), ("csr", _CsrMatrix), ("coo", _CooMatrix))
    for kind in ("matrix", "array")
}


def _numpy_global(module: str, name: str):
    """numpy's pickle helpers, under both their numpy 1 (numpy.core) and 2 (numpy._core) names."""
    for candidate in (module.replace("numpy.core", "numpy._core"), module):
        try:
            return getattr(importlib.import_module(candidate), name)
        except (ImportError, AttributeError):
            continue
    return None


_NUMPY_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
}


def _latin1_bytes(text: str, encoding: str = "latin1", errors: str = "strict") -> bytes:
    """What Python 3 protocol-2 pickles call ``_codecs.encode`` for: bytes, via latin-1 only."""
    if encoding.lower().replace("-", "").replace("_", "") not in ("latin1", "iso88591"):
        raise pickle.UnpicklingError(f"unexpected encoding {encoding!r} for bytes")
    return text.encode("latin1", errors)


# Python 2 names as they appear in SMPL 1.0 pickles, next to their Python 3 spellings.
_BUILTIN_GLOBALS = {
    ("copy_reg", "_reconstructor"): copyreg._reconstructor,
    ("copyreg", "_reconstructor"): copyreg._reconstructor,
    ("__builtin__", "object"): object,
    ("builtins", "object"): object,
    ("__builtin__", "set"): set,
    ("builtins", "set"): set,
    ("__builtin__", "frozenset"): frozenset,
    ("builtins", "frozenset"): frozenset,
    ("_codecs", "encode"): _latin1_bytes,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler that resolves only array data types and refuses every other global."""

    def __init__(self, file, source: str | os.PathLike):
        super().__init__(file, encoding="latin1")
        self.source = str(source)

    def find_class(self, module: str, name: str):
        """Resolve ``module.name`` from the allow-list, or raise InputError naming it."""
        if (module, name) in _NUMPY_GLOBALS:
            found = _numpy_global(module, name)
            if found is not None:
                return found
        if (module, name) in _BUILTIN_GLOBALS:
            return _BUILTIN_GLOBALS[(module, name)]
        if module.startswith("scipy.sparse") and name in _SPARSE_CLASSES:
            return _SPARSE_CLASSES[name]
        if module == "chumpy" or module.startswith("chumpy."):
            return _ChumpyArray
        raise InputError(
            f"refusing to unpickle '{module}.{name}' from {self.source}: an SMPL file holds only "
            "numpy, scipy.sparse and chumpy arrays, so this file is not one (or was tampered with)"
        )


def restricted_load(file, source: str | os.PathLike):
    """Unpickle one object from a binary file object through :class:`RestrictedUnpickler`."""
    try:
        return RestrictedUnpickler(file, source).load()
    except InputError:
        raise
    except Exception as exc:  # any malformed stream: EOFError, UnpicklingError, ValueError...
        raise InputError(
            f"{source}: not a readable SMPL pickle ({type(exc).__name__}: {exc})"
        ) from None


def _densify(matrix: _SparseMatrix, key: str, source: str) -> np.ndarray:
    state = matrix.state
    shape = tuple(int(s) for s in state.get("_shape", state.get("shape", ())))
    if len(shape) != 2 or int(np.prod(shape)) > MAX_DENSE_ELEMENTS:
        raise InputError(f"{source}: '{key}' is a sparse matrix of unusable shape {shape}")
    try:
        data = np.asarray(state["data"], np.float64).reshape(-1)
        if matrix.format == "coo":
            if "coords" in state:
                rows, cols = (np.asarray(c, np.int64) for c in state["coords"])
            else:
                rows, cols = np.asarray(state["row"], np.int64), np.asarray(state["col"], np.int64)
        else:
            indptr = np.asarray(state["indptr"], np.int64)
            indices = np.asarray(state["indices"], np.int64)
            outer = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
            rows, cols = (indices, outer) if matrix.format == "csc" else (outer, indices)
        dense = np.zeros(shape, np.float64)
        np.add.at(dense, (rows, cols), data)  # duplicates add up, as in scipy
    except (KeyError, ValueError, IndexError, TypeError) as exc:
        raise InputError(f"{source}: '{key}' is a malformed sparse matrix ({exc})") from None
    return dense


def _to_array(value, key: str, source: str) -> np.ndarray:
    """An SMPL entry (ndarray, chumpy stand-in, sparse stand-in, 0-d object array) as ndarray."""
    if isinstance(value, np.ndarray) and value.dtype == object and value.ndim == 0:
        value = value.item()
    if isinstance(value, _ChumpyArray):
        if "x" not in value.state:
            raise InputError(
                f"{source}: '{key}' is a chumpy expression without stored values; "
                "re-save the file with chumpy's arrays evaluated (ch.array(...).r)"
            )
        value = value.state["x"]
    if isinstance(value, _SparseMatrix):
        return _densify(value, key, source)
    arr = np.asarray(value)
    if arr.dtype == object:
        raise InputError(f"{source}: '{key}' is not a numeric array")
    return arr


def _read_npz_entries(path: Path) -> dict:
    """Every member of an npz; object members go through the restricted unpickler."""
    entries = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for member in zf.namelist():
                if not member.endswith(".npy"):
                    continue
                key = member[: -len(".npy")]
                with zf.open(member) as fh:
                    raw = fh.read()
                buf = io.BytesIO(raw)
                version = np.lib.format.read_magic(buf)
                if version == (1, 0):
                    _, _, dtype = np.lib.format.read_array_header_1_0(buf)
                elif version == (2, 0):
                    _, _, dtype = np.lib.format.read_array_header_2_0(buf)
                else:  # 3.0 (utf-8 field names) has no public header reader
                    _, _, dtype = np.lib.format._read_array_header(buf, version)
                if dtype.hasobject:
                    entries[key] = restricted_load(buf, path)
                else:
                    entries[key] = np.lib.format.read_array(io.BytesIO(raw), allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise InputError(f"{path}: not a readable npz, corrupt or truncated ({exc})") from None
    return entries


def read_smpl(path: str | os.PathLike) -> dict:
    """The raw entries of an official SMPL ``.pkl`` or ``.npz``, as plain numpy arrays.

    Only the keys hmrt uses are converted; others (e.g. ``J_regressor_prior``, ``bs_style``)
    are dropped. Raises :class:`InputError` for a missing, unreadable or unsafe file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: SMPL file not found")
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head.startswith(b"PK"):
        raw = _read_npz_entries(path)
    else:
        with open(path, "rb") as fh:
            raw = restricted_load(fh, path)
    if not isinstance(raw, dict):
        raise InputError(f"{path}: not an SMPL model (the pickle holds a {type(raw).__name__})")
    missing = [k for k in REQUIRED_KEYS if k not in raw]
    if missing:
        raise InputError(f"{path}: not an SMPL model (missing {', '.join(missing)})")
    keys = [*REQUIRED_KEYS, "posedirs"]
    return {k: _to_array(raw[k], k, str(path)) for k in keys if k in raw}


def smpl_to_body_arrays(raw: dict, source: str | os.PathLike, n_betas: int = 10) -> dict:
    """SMPL entries -> arrays in hmrt's layout (first ``n_betas`` shape components kept)."""
    kintree = np.asarray(raw["kintree_table"]).astype(np.int64)
    n_joints = kintree.shape[-1] if kintree.ndim == 2 else -1
    if n_joints != len(SMPL_JOINT_NAMES):
        raise InputError(
            f"{source}: has {n_joints} joints; hmrt needs the 24-joint SMPL body model "
            "(SMPL-H / SMPL-X files are not supported)"
        )
    kintree[0, 0] = -1
    out = {
        "v_template": np.asarray(raw["v_template"], np.float32),
        "shapedirs": np.asarray(raw["shapedirs"], np.float32)[..., :n_betas],
        "J_regressor": np.asarray(raw["J_regressor"], np.float32),
        "weights": np.asarray(raw["weights"], np.float32),
        "kintree_table": kintree,
        "f": np.asarray(raw["f"]).astype(np.int32),
        "joint_names": np.array(SMPL_JOINT_NAMES),
        "licence": np.array(SMPL_LICENCE),
    }
    if "posedirs" in raw:
        out["posedirs"] = np.asarray(raw["posedirs"], np.float32)
    validate(out, source)  # the same checks BodyModel applies, before anything is written
    return out


def default_output(src: Path) -> Path:
    """``SMPL_NEUTRAL.pkl`` -> ``SMPL_NEUTRAL.hmrt.npz`` next to it."""
    return src.with_name(src.stem + ".hmrt.npz")


def add_uv_chart(arrays: dict, chart_path: str | os.PathLike) -> dict:
    """Attach the continuous UV chart in ``chart_path`` to converted SMPL ``arrays`` (in place).

    Adds ``cont_vt``/``cont_ft``/``cont_v2vt`` in hmrt's convention and ``cont_provenance``
    (``uv_chart.py``: DecoMR's ``v`` grows downward, hmrt stores ``1 - v``), and notes the
    chart's origin in the licence text. Refuses (InputError, one line) a chart whose topology
    is not the imported mesh's. Returns ``arrays``.
    """
    from hmrt.runtime.body.uv_chart import chart_arrays, read_uv_chart

    chart = read_uv_chart(chart_path)
    n_verts = len(arrays["v_template"])
    cont, provenance = chart_arrays(chart, arrays["f"], n_verts, chart_path)
    arrays.update(cont)
    arrays["cont_provenance"] = np.array(provenance)
    arrays["licence"] = np.array(f"{SMPL_LICENCE}. {CHART_LICENCE}")
    validate(arrays, chart_path)
    return arrays


def import_smpl(
    src: str | os.PathLike,
    dest: str | os.PathLike | None = None,
    n_betas: int = 10,
    uv_chart: str | os.PathLike | None = None,
) -> Path:
    """Convert ``src`` (SMPL .pkl/.npz) to an hmrt body npz at ``dest``, written atomically.

    ``uv_chart``: a continuous UV chart of SMPL's mesh (DecoMR's ``smpl_boundry_free_template.obj``)
    to store in the file, for DecoMR's UV tables (:func:`add_uv_chart`). Every check runs before
    anything is written, so a refused chart leaves no output behind.
    """
    src = Path(src)
    dest = Path(dest) if dest is not None else default_output(src)
    if dest.suffix.lower() != ".npz":
        raise InputError(f"{dest}: the output must be an .npz file")
    for given, what in ((src, "the input"), (uv_chart, "the UV chart")):
        if given is not None and dest.exists() and dest.resolve() == Path(given).resolve():
            raise InputError(f"{dest}: the output would overwrite {what}; pass --out")
    arrays = smpl_to_body_arrays(read_smpl(src), src, n_betas)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()[:16]
    arrays["provenance"] = np.array(
        f"converted by 'hmrt body import-smpl' from {src.name} (sha256 {digest}...)"
    )
    if uv_chart is not None:
        add_uv_chart(arrays, uv_chart)
    with atomic_path(dest) as tmp:
        np.savez_compressed(tmp, **arrays)
    return dest
