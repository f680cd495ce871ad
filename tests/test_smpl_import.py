"""SMPL import: a restricted unpickler reads chumpy/scipy SMPL files without chumpy, refuses
anything else without running it, and the converted npz poses like the source."""

from __future__ import annotations

import io
import os
import pickle
import sys
import types

import numpy as np
import pytest
from body_helpers import random_rotmats, synthetic_body_arrays

from hmrt.runtime.body import BodyModel
from hmrt.runtime.body.smpl_import import import_smpl, read_smpl, restricted_load
from hmrt.runtime.errors import InputError

sparse = pytest.importorskip("scipy.sparse")  # only to *write* realistic test files


class _Ch:
    """Pickles like a chumpy ``Ch`` array: class ``chumpy.ch.Ch``, state dict holding ``x``."""

    def __init__(self, x, keep_x: bool = True):
        self.x, self.keep_x = x, keep_x

    def __getstate__(self):
        state = {"_dirty_vars": {"x"}, "_itr": None, "_make_dense": False, "_depends_on_deps": {}}
        if self.keep_x:
            state["x"] = self.x
        return state


@pytest.fixture
def fake_chumpy(monkeypatch):
    """A _Ch subclass named chumpy.ch.Ch, importable while the test pickles it (chumpy itself
    is not installed)."""
    ch_class = type("Ch", (_Ch,), {"__module__": "chumpy.ch"})
    package, module = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")
    module.Ch = ch_class
    monkeypatch.setitem(sys.modules, "chumpy", package)
    monkeypatch.setitem(sys.modules, "chumpy.ch", module)
    return ch_class


def _smpl_dict(arrays: dict, ch, n_betas: int = 12) -> dict:
    """An SMPL-1.0-like model dict from synthetic arrays: chumpy bases, sparse regressor."""
    rng = np.random.default_rng(11)
    shapedirs = np.concatenate(
        [arrays["shapedirs"], rng.normal(0, 0.01, (len(arrays["v_template"]), 3, n_betas - 10))],
        axis=2,
    ).astype(np.float64)
    kintree = arrays["kintree_table"].copy()
    kintree[0, 0] = 2**32 - 1
    return {
        "v_template": ch(arrays["v_template"].astype(np.float64)),
        "shapedirs": ch(shapedirs),
        "posedirs": ch(arrays["posedirs"].astype(np.float64)),
        "J_regressor": sparse.csc_matrix(arrays["J_regressor"].astype(np.float64)),
        "J_regressor_prior": sparse.csc_matrix(arrays["J_regressor"].astype(np.float64)),
        "weights": ch(arrays["weights"].astype(np.float64)),
        "kintree_table": kintree,
        "f": arrays["f"].astype(np.uint32),
        "J": arrays["J_regressor"] @ arrays["v_template"],
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }


def _py2_names(data: bytes) -> bytes:
    """Rewrite module paths as Python 2 / old scipy / numpy 1 wrote them (text GLOBAL opcodes)."""
    for new, old in [
        (b"scipy.sparse._csc", b"scipy.sparse.csc"),
        (b"numpy._core.multiarray", b"numpy.core.multiarray"),
        (b"copyreg\n", b"copy_reg\n"),
        (b"builtins\n", b"__builtin__\n"),
    ]:
        data = data.replace(new, old)
    return data


def _same_pose(path_a, path_b, n_betas: int = 10) -> float:
    rotmats = random_rotmats(6, seed=3)
    betas = np.random.default_rng(4).normal(size=(6, n_betas)).astype(np.float32)
    va, ja = BodyModel(path_a).forward(rotmats, betas)
    vb, jb = BodyModel(path_b).forward(rotmats, betas)
    return max(np.abs(va - vb).max(), np.abs(ja - jb).max())


@pytest.mark.parametrize("protocol", [0, 2])
def test_import_smpl_1_0_style_pickle(tmp_path, fake_chumpy, protocol):
    arrays = synthetic_body_arrays(seed=5, posedirs=True, surface=False)
    np.savez(tmp_path / "reference.npz", **arrays)
    data = _py2_names(pickle.dumps(_smpl_dict(arrays, fake_chumpy), protocol=protocol))
    assert b"chumpy.ch" in data and b"scipy.sparse.csc\n" in data
    src = tmp_path / "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl"
    src.write_bytes(data)
    sys.modules.pop("chumpy.ch")  # loading must not need the (fake) chumpy module

    out = import_smpl(src, tmp_path / "smpl.npz")
    body = BodyModel(out)
    assert (body.n_verts, body.n_joints, body.n_betas) == (504, 24, 10)
    assert body.posedirs is not None and body.surface_keys == []
    assert body.joint_names[1] == "left_hip" and "SMPL Model License" in body.licence
    assert src.name in body.provenance
    assert body.hash == BodyModel(tmp_path / "reference.npz").hash
    assert _same_pose(out, tmp_path / "reference.npz") < 1e-6


def test_import_smpl_1_1_style_pickle_and_default_output(tmp_path):
    """SMPL 1.1 / re-saved files: plain arrays, 300 betas, modern scipy paths, protocol 4."""
    arrays = synthetic_body_arrays(seed=6, posedirs=True, surface=False)
    np.savez(tmp_path / "reference.npz", **arrays)
    model = _smpl_dict(arrays, lambda x: x, n_betas=300)
    src = tmp_path / "SMPL_NEUTRAL.pkl"
    src.write_bytes(pickle.dumps(model, protocol=4))
    out = import_smpl(src)
    assert out == tmp_path / "SMPL_NEUTRAL.hmrt.npz"
    assert BodyModel(out).n_betas == 10
    assert _same_pose(out, tmp_path / "reference.npz") < 1e-6
    assert BodyModel(import_smpl(src, tmp_path / "b16.npz", n_betas=16)).n_betas == 16


def test_import_smpl_npz_with_sparse_object_member(tmp_path):
    arrays = synthetic_body_arrays(seed=7, posedirs=True, surface=False)
    np.savez(tmp_path / "reference.npz", **arrays)
    official = dict(arrays)
    official["J_regressor"] = np.array(sparse.csr_matrix(arrays["J_regressor"]), dtype=object)
    official["bs_style"] = np.array("lbs")
    del official["joint_names"], official["licence"], official["provenance"]
    src = tmp_path / "SMPL_MALE.npz"
    np.savez(src, **official)  # object member: a pickle inside the npz
    out = import_smpl(src, tmp_path / "converted.npz")
    assert _same_pose(out, tmp_path / "reference.npz") < 1e-6
    assert "SMPL Model License" in BodyModel(out).licence


def test_plain_npz_converts_and_cannot_overwrite_itself(tmp_path):
    arrays = synthetic_body_arrays(seed=8, surface=False)
    src = tmp_path / "plain.npz"
    np.savez(src, **arrays)
    assert _same_pose(import_smpl(src, tmp_path / "out.npz"), src) < 1e-6
    with pytest.raises(InputError, match="overwrite the input"):
        import_smpl(src, src)


@pytest.mark.parametrize("fmt", ["csc", "csr", "coo"])
def test_sparse_matrices_densify_without_scipy_code(fmt):
    rng = np.random.default_rng(9)
    rows, cols = rng.integers(0, 24, 300), rng.integers(0, 50, 300)  # duplicates included
    matrix = sparse.coo_matrix((rng.random(300), (rows, cols)), shape=(24, 50)).asformat(fmt)
    loaded = restricted_load(io.BytesIO(pickle.dumps({"J_regressor": matrix})), "mem.pkl")
    from hmrt.runtime.body.smpl_import import _to_array

    np.testing.assert_allclose(_to_array(loaded["J_regressor"], "J", "mem"), matrix.toarray())


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_refuses_os_system_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    src = tmp_path / "SMPL_EVIL.pkl"
    src.write_bytes(pickle.dumps({"v_template": _Evil(marker)}, protocol=2))
    out = tmp_path / "out.npz"
    with pytest.raises(InputError) as exc:
        import_smpl(src, out)
    msg = str(exc.value)
    assert msg.startswith(f"refusing to unpickle '{os.system.__module__}.system' from {src}")
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["SMPL_EVIL.pkl"]  # nothing written


@pytest.mark.parametrize(
    "payload, name",
    [
        (b"cos\nsystem\n(S'touch {m}'\ntR.", "os.system"),
        (b'c__builtin__\neval\n(S\'open("{m}", "w")\'\ntR.', "__builtin__.eval"),
        (b"cbuiltins\ngetattr\n(cbuiltins\nobject\nS'x'\ntR.", "builtins.getattr"),
        (b"cnumpy\nload\n(S'{m}'\ntR.", "numpy.load"),
        (b"csubprocess\nPopen\n((S'touch'\nS'{m}'\nltR.", "subprocess.Popen"),
    ],
)
def test_refuses_every_other_global(tmp_path, payload, name):
    marker = tmp_path / "pwned"
    src = tmp_path / "model.pkl"
    src.write_bytes(payload.replace(b"{m}", str(marker).encode()))
    with pytest.raises(InputError, match=f"refusing to unpickle '{name}' from "):
        read_smpl(src)
    assert not marker.exists()


def test_chumpy_expression_without_values_is_explained(tmp_path, fake_chumpy):
    arrays = synthetic_body_arrays(surface=False)
    model = _smpl_dict(arrays, fake_chumpy)
    model["shapedirs"] = fake_chumpy(None, keep_x=False)
    src = tmp_path / "expr.pkl"
    src.write_bytes(pickle.dumps(model, protocol=2))
    with pytest.raises(InputError, match="chumpy expression"):
        read_smpl(src)


def test_smplh_like_file_is_rejected(tmp_path):
    arrays = synthetic_body_arrays(surface=False)
    model = _smpl_dict(arrays, lambda x: x)
    model["kintree_table"] = np.stack([np.arange(-1, 51), np.arange(52)])
    src = tmp_path / "SMPLH_NEUTRAL.pkl"
    src.write_bytes(pickle.dumps(model))
    with pytest.raises(InputError, match="has 52 joints"):
        import_smpl(src, tmp_path / "out.npz")
    assert not (tmp_path / "out.npz").exists()


@pytest.mark.parametrize("content", [b"", b"\x80\x02}q\x00(X\x01", b"hello", b"\x80\x02]q\x00."])
def test_unreadable_files_are_input_errors(tmp_path, content):
    src = tmp_path / "broken.pkl"
    src.write_bytes(content)
    with pytest.raises(InputError) as exc:
        import_smpl(src, tmp_path / "out.npz")
    assert str(src) in str(exc.value)
    with pytest.raises(InputError, match="not found"):
        import_smpl(tmp_path / "missing.pkl")
