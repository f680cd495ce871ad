"""Body layers: BodyModel (numpy) and BodyLayer (torch) agree with each other, with smplx and
with their ONNX export; loading errors are one clear InputError."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from body_helpers import random_rotmats, synthetic_body_arrays, write_synthetic_body

from hmrt.runtime.body import BodyModel, default_body_path
from hmrt.runtime.errors import InputError
from hmrt.train.body import BodyLayer

TOL = 1e-5  # metres
BANNED_OPS = {"Einsum", "ScatterND", "ScatterElements", "Pad", "NonZero", "Loop"}


@pytest.fixture(scope="module", params=["open", "correctives"])
def body_path(request, tmp_path_factory):
    """A synthetic body without (like the open model) and with pose correctives (like SMPL)."""
    path = tmp_path_factory.mktemp("body") / f"{request.param}.npz"
    return write_synthetic_body(path, posedirs=request.param == "correctives")


@pytest.fixture(
    scope="module",
    params=[
        "open",
        "correctives",
        "asset",
    ],
)
def any_body_path(request, tmp_path_factory):
    """The synthetic bodies and the bundled open model: parity must hold on all of them."""
    if request.param == "asset":
        return default_body_path()
    path = tmp_path_factory.mktemp("body") / f"{request.param}.npz"
    return write_synthetic_body(path, posedirs=request.param == "correctives")


def _pose(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    betas = np.random.default_rng(seed + 100).normal(size=(n, 10)).astype(np.float32)
    return random_rotmats(n, seed=seed), betas


def test_body_model_attributes(body_path):
    body = BodyModel(body_path)
    assert (body.n_verts, body.n_joints, body.n_betas) == (504, 24, 10)
    assert body.n_faces == 672 and body.faces.dtype == np.int32
    assert body.parents == [
        -1,
        0,
        0,
        0,
        1,
        2,
        3,
        4,
        5,
        6,
        7,
        8,
        9,
        9,
        9,
        12,
        13,
        14,
        16,
        17,
        18,
        19,
        20,
        21,
    ]
    assert all(type(p) is int for p in body.parents)
    assert body.joint_names[0] == "pelvis" and body.joint_names[23] == "right_hand"
    for name in ("v_template", "shapedirs", "J_regressor", "weights"):
        assert getattr(body, name).dtype == np.float32
    assert (body.posedirs is None) == body_path.name.startswith("open")
    assert body.licence == "synthetic test body (CC0)"
    assert len(body.hash) == 16 and int(body.hash, 16) >= 0
    assert "flip_vertex" in body.surface_keys and body.vt.shape == (504, 2)
    np.testing.assert_allclose(body.J_template, body.J_regressor @ body.v_template, atol=1e-6)


def test_loading_is_cached_and_arrays_are_read_only(body_path):
    a, b = BodyModel(body_path), BodyModel(body_path)
    assert a.v_template is b.v_template
    with pytest.raises(ValueError):
        a.v_template[0, 0] = 1.0


def test_hash_is_stable_and_geometric(tmp_path):
    arrays = synthetic_body_arrays(seed=3)
    np.savez(tmp_path / "a.npz", **arrays)
    # float64 storage, no zero posedirs, other licence text: same geometry, same hash
    other = {k: (v.astype(np.float64) if v.dtype == np.float32 else v) for k, v in arrays.items()}
    del other["posedirs"]
    other["licence"] = np.array("another text")
    np.savez(tmp_path / "b.npz", **other)
    assert BodyModel(tmp_path / "a.npz").hash == BodyModel(tmp_path / "b.npz").hash
    arrays["v_template"] = arrays["v_template"] + np.float32(1e-3)
    np.savez(tmp_path / "c.npz", **arrays)
    assert BodyModel(tmp_path / "c.npz").hash != BodyModel(tmp_path / "a.npz").hash


def test_rest_pose_gives_the_template(any_body_path):
    body = BodyModel(any_body_path)
    eye = np.broadcast_to(np.eye(3, dtype=np.float32), (2, 24, 3, 3))
    verts, joints = body.forward(eye, np.zeros((2, 10), np.float32))
    np.testing.assert_allclose(verts, np.broadcast_to(body.v_template, verts.shape), atol=1e-6)
    np.testing.assert_allclose(joints, np.broadcast_to(body.J_template, joints.shape), atol=1e-6)
    assert verts.dtype == np.float32 and joints.dtype == np.float32


def test_global_rotation_rotates_everything_about_the_root(any_body_path):
    body = BodyModel(any_body_path)
    rotmats, betas = _pose(3, seed=1)
    verts, joints = body.forward(rotmats, betas)
    spin = random_rotmats(1, n_joints=1, seed=9, scale=1.0)[0, 0]
    rotated = rotmats.copy()
    rotated[:, 0] = spin @ rotmats[:, 0]
    verts2, joints2 = body.forward(rotated, betas)
    root = joints[:, :1]
    np.testing.assert_allclose(verts2 - root, (verts - root) @ spin.T, atol=1e-5)
    np.testing.assert_allclose(joints2 - root, (joints - root) @ spin.T, atol=1e-5)


def test_numpy_and_torch_layers_agree(any_body_path):
    body = BodyModel(any_body_path)
    layer = BodyLayer(body)
    rotmats, betas = _pose(16, seed=2)
    verts, joints = body.forward(rotmats, betas)
    with torch.no_grad():
        tverts, tjoints = layer(torch.from_numpy(rotmats), torch.from_numpy(betas))
    assert tverts.dtype == torch.float32 and tverts.shape == (16, body.n_verts, 3)
    assert np.abs(tverts.numpy() - verts).max() < TOL
    assert np.abs(tjoints.numpy() - joints).max() < TOL
    # fewer betas than the model has: the first K components
    v5, _ = body.forward(rotmats, betas[:, :5])
    padded = np.concatenate([betas[:, :5], np.zeros((16, 5), np.float32)], axis=1)
    np.testing.assert_allclose(v5, body.forward(rotmats, padded)[0], atol=1e-6)
    with torch.no_grad():
        t5, _ = layer(torch.from_numpy(rotmats), torch.from_numpy(betas[:, :5]))
    assert np.abs(t5.numpy() - v5).max() < TOL


def test_torch_layer_stays_fp32_under_autocast(any_body_path):
    layer = BodyLayer(any_body_path)
    rotmats, betas = _pose(4, seed=3)
    ref, _ = BodyModel(any_body_path).forward(rotmats, betas)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        verts, joints = layer(torch.from_numpy(rotmats).bfloat16(), torch.from_numpy(betas))
    assert verts.dtype == torch.float32 and joints.dtype == torch.float32
    # the bf16 input rotations are the only rounding: ~1e-2 relative, but never bf16 sums
    assert np.abs(verts.numpy() - ref).max() < 0.05


def test_torch_layer_buffers_follow_the_module_but_not_the_state_dict(body_path):
    layer = BodyLayer(body_path)
    assert layer.state_dict() == {}
    assert layer.double().v_template.dtype == torch.float64  # moved like any buffer
    assert layer.body_hash == BodyModel(body_path).hash


def test_smplx_agrees_on_the_same_file(any_body_path):
    smplx = pytest.importorskip("smplx")
    from smplx.utils import Struct
    from smplx.vertex_ids import vertex_ids

    body = BodyModel(any_body_path)
    with np.load(any_body_path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    # smplx always applies posedirs; a file without them means zero correctives
    arrays.setdefault("posedirs", np.zeros((body.n_verts, 3, 207), np.float32))
    struct = Struct(**arrays)
    # smplx appends 21 "extra joints" at SMPL vertex ids; point them anywhere valid and drop them
    ids = {key: 0 for key in vertex_ids["smplh"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = smplx.SMPL(model_path="", data_struct=struct, vertex_ids=ids, num_betas=10)
    rotmats, betas = _pose(8, seed=4)
    rt = torch.from_numpy(rotmats)
    with torch.no_grad():
        out = model(
            betas=torch.from_numpy(betas), global_orient=rt[:, :1], body_pose=rt[:, 1:],
            pose2rot=False,
        )  # fmt: skip
    verts, joints = body.forward(rotmats, betas)
    assert np.abs(out.vertices.numpy() - verts).max() < TOL
    assert np.abs(out.joints[:, :24].numpy() - joints).max() < TOL


@pytest.mark.parametrize("dynamo", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_torch_layer_exports_to_onnx_with_plain_ops(any_body_path, tmp_path, dynamo):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    layer = BodyLayer(any_body_path).eval()
    rotmats, betas = _pose(2, seed=5)
    example = (torch.from_numpy(rotmats), torch.from_numpy(betas))
    path = tmp_path / "body.onnx"
    names, outs = ["rotmats", "betas"], ["vertices", "joints"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            batch = torch.export.Dim("batch")
            torch.onnx.export(
                layer, example, path, dynamo=True, opset_version=17, input_names=names,
                output_names=outs, external_data=False,
                dynamic_shapes={"rotmats": {0: batch}, "betas": {0: batch}},
            )  # fmt: skip
        else:
            torch.onnx.export(
                layer, example, path, dynamo=False, opset_version=17, input_names=names,
                output_names=outs, dynamic_axes={k: {0: "batch"} for k in names + outs},
            )  # fmt: skip
    model = onnx.load(path)
    ops = {node.op_type for node in model.graph.node}
    assert not ops & BANNED_OPS, ops & BANNED_OPS
    assert {o.version for o in model.opset_import if o.domain in ("", "ai.onnx")} == {17}
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rotmats, betas = _pose(5, seed=6)  # a different batch size than the export
    verts, joints = session.run(None, {"rotmats": rotmats, "betas": betas})
    ref_v, ref_j = BodyModel(any_body_path).forward(rotmats, betas)
    assert np.abs(verts - ref_v).max() < TOL
    assert np.abs(joints - ref_j).max() < TOL


# --- loading errors -------------------------------------------------------------------------


def _message(path, exc_info) -> str:
    msg = str(exc_info.value)
    assert str(path) in msg and "\n" not in msg
    return msg


def test_missing_file_is_an_input_error(tmp_path):
    path = tmp_path / "nope.npz"
    with pytest.raises(InputError) as exc:
        BodyModel(path)
    assert "not found" in _message(path, exc)


def test_wrong_keys_name_the_missing_ones(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, a=np.zeros(3))
    with pytest.raises(InputError) as exc:
        BodyModel(path)
    msg = _message(path, exc)
    assert "missing v_template" in msg and "import-smpl" in msg


def test_pickle_inside_is_refused(tmp_path):
    arrays = synthetic_body_arrays()
    arrays["J_regressor"] = np.array(arrays["J_regressor"], dtype=object)
    path = tmp_path / "objects.npz"
    np.savez(path, **arrays)
    with pytest.raises(InputError) as exc:
        BodyModel(path)
    assert "pickled objects" in _message(path, exc)


@pytest.mark.parametrize("content", [b"\x80\x02}q\x00.", b"not an npz at all", b"PK\x03\x04trunc"])
def test_pickles_and_corrupt_files_are_refused(tmp_path, content):
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    with pytest.raises(InputError) as exc:
        BodyModel(path)
    _message(path, exc)


def test_pkl_path_points_to_import_smpl(tmp_path):
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(b"\x80\x02}q\x00.")
    with pytest.raises(InputError) as exc:
        BodyModel(path)
    assert "hmrt body import-smpl" in _message(path, exc)


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("weights", np.zeros((504, 23), np.float32), "'weights' has shape"),
        ("f", np.full((3, 3), 9999, np.int32), "indices outside"),
        ("kintree_table", np.stack([np.arange(-1, 23) + 2, np.arange(24)]), "must precede"),
        ("posedirs", np.ones((504, 3, 10), np.float32), "'posedirs' has shape"),
        ("joint_names", np.array(["a", "b"]), "2 names for 24 joints"),
    ],
)
def test_inconsistent_arrays_are_input_errors(tmp_path, key, value, expected):
    arrays = synthetic_body_arrays()
    arrays[key] = value
    path = tmp_path / "broken.npz"
    np.savez(path, **arrays)
    with pytest.raises(InputError) as exc:
        BodyModel(path)
    assert expected in _message(path, exc)


# --- the bundled open model -----------------------------------------------------------------


def test_default_asset_loads_and_follows_the_contract():
    body = BodyModel()
    assert body.n_joints == 24 and body.n_betas == 10
    assert 5000 < body.n_verts < 20000
    np.testing.assert_allclose(body.weights.sum(1), 1.0, atol=1e-4)
    assert body.posedirs is None  # the open model has no pose correctives
    assert body.licence and "unknown" not in body.licence
    rotmats, betas = _pose(4, seed=7)
    verts, joints = body.forward(rotmats, betas)
    with torch.no_grad():
        tverts, tjoints = BodyLayer()(torch.from_numpy(rotmats), torch.from_numpy(betas))
    assert np.abs(tverts.numpy() - verts).max() < TOL
    assert np.abs(tjoints.numpy() - joints).max() < TOL
