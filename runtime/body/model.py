"""``BodyModel``: the body-model npz as numpy arrays, plus SMPL linear blend skinning in numpy.

The runtime's body layer (no torch): loads the bundled open model
(``assets/body/hmrt_body.npz``) or a converted SMPL file, exposes the arrays with their
contract names, and poses the mesh with SMPL semantics. ``hmrt.train.body.BodyLayer`` is the
torch twin; both use the precomputed ``J_template`` / ``J_shapedirs`` defined here.
"""

from __future__ import annotations

import functools
import os
import zipfile
from pathlib import Path

import numpy as np

from hmrt.runtime.body.layout import CONVERT_HINT, SURFACE_KEYS, geometry_hash, validate
from hmrt.runtime.errors import InputError

DEFAULT_ASSET = "body/hmrt_body.npz"


def default_body_path() -> Path:
    """Path of the bundled open body model."""
    from hmrt.assets import asset_path

    return asset_path(DEFAULT_ASSET)


def _read_npz(path: Path) -> dict:
    """Every array of a plain-array npz; any failure becomes an InputError naming the fix."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except FileNotFoundError:
        raise InputError(f"{path}: body model file not found") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected a body model .npz file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the body model ({exc.strerror or exc})") from None
    if path.suffix.lower() == ".pkl" or head[:1] == b"\x80":
        raise InputError(f"{path}: is a pickle; hmrt reads body models as npz, {CONVERT_HINT}")
    if not head.startswith(b"PK"):
        raise InputError(f"{path}: not an npz file (no zip header); expected a body model .npz")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise InputError(
                f"{path}: contains pickled objects, which hmrt never loads; if it is an "
                "official SMPL npz, convert it with: hmrt body import-smpl FILE"
            ) from None
        raise InputError(f"{path}: not a readable npz ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path}: not a readable npz, corrupt or truncated ({exc})") from None


@functools.lru_cache(maxsize=8)
def _load(path: str, mtime_ns: int, size: int) -> dict:
    """Validated, read-only arrays and derived quantities of one file version (cached)."""
    data = validate(_read_npz(Path(path)), path)
    data["hash"] = geometry_hash(data)
    v_template, shapedirs = data["v_template"], data["shapedirs"]
    regressor = data["J_regressor"].astype(np.float64)
    # The joints are linear in the betas, so they need no per-call regression over all vertices.
    data["J_template"] = (regressor @ v_template).astype(np.float32)
    n_verts, _, n_betas = shapedirs.shape
    data["J_shapedirs"] = (
        (regressor @ shapedirs.reshape(n_verts, 3 * n_betas))
        .reshape(-1, 3, n_betas)
        .astype(np.float32)
    )
    for value in data.values():
        if isinstance(value, np.ndarray):
            value.setflags(write=False)  # shared between BodyModel instances
    return data


class BodyModel:
    """A body model (SMPL layout) loaded from an npz, with ``forward`` = SMPL skinning.

    ``BodyModel()`` loads the bundled open model; ``BodyModel(path)`` any file in the layout of
    docs/DEVELOPING.md, e.g. one written by ``hmrt body import-smpl``. Loading is cached per
    file version, and the arrays are read-only because instances share them.

    Attributes: ``v_template (V,3)``, ``shapedirs (V,3,B)``, ``posedirs (V,3,9(J-1))`` or None
    when absent or all zero, ``J_regressor (J,V)``, ``weights (V,J)`` (float32); ``parents``
    (list of int, root -1), ``faces`` (F,3) int32, ``joint_names``, ``licence``, ``provenance``,
    ``cont_provenance`` (where an attached continuous UV chart came from, or None), ``hash``,
    ``J_template (J,3)`` and ``J_shapedirs (J,3,B)`` (the regressor applied to the template and
    shape basis), and the surface arrays (``vt``, ``ft``, ``dp_I``, ``dp_uv``,
    ``cont_vt``, ``cont_ft``, ``cont_v2vt``, ``flip_vertex``, ``flip_joint``) or None.
    """

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else default_body_path()
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            hint = (
                "; the bundled model is missing: reinstall hmrt"
                if path is None
                else ", check the path"
            )
            raise InputError(f"{self.path}: body model file not found{hint}") from None
        data = _load(str(self.path.resolve()), stat.st_mtime_ns, stat.st_size)
        self.file_size = stat.st_size
        self.v_template: np.ndarray = data["v_template"]
        self.shapedirs: np.ndarray = data["shapedirs"]
        self.posedirs: np.ndarray | None = data["posedirs"]
        self.J_regressor: np.ndarray = data["J_regressor"]
        self.weights: np.ndarray = data["weights"]
        self.parents: list[int] = list(data["parents"])
        self.faces: np.ndarray = data["f"]
        self.joint_names: tuple[str, ...] = data["joint_names"]
        self.licence: str = data["licence"] or "unknown (the file carries no licence text)"
        self.provenance: str | None = data["provenance"]
        self.cont_provenance: str | None = data["cont_provenance"]
        self.hash: str = data["hash"]
        self.J_template: np.ndarray = data["J_template"]
        self.J_shapedirs: np.ndarray = data["J_shapedirs"]
        for key in SURFACE_KEYS:
            setattr(self, key, data.get(key))

    @property
    def n_verts(self) -> int:
        """Number of mesh vertices V."""
        return self.v_template.shape[0]

    @property
    def n_faces(self) -> int:
        """Number of triangles F."""
        return self.faces.shape[0]

    @property
    def n_joints(self) -> int:
        """Number of skeleton joints J (24 for SMPL)."""
        return len(self.parents)

    @property
    def n_betas(self) -> int:
        """Number of shape coefficients B the file provides."""
        return self.shapedirs.shape[2]

    @property
    def surface_keys(self) -> list[str]:
        """The surface arrays (UV, DensePose parts, flip maps) present in the file."""
        return [key for key in SURFACE_KEYS if getattr(self, key) is not None]

    def __repr__(self) -> str:
        return (
            f"BodyModel({str(self.path)!r}, verts={self.n_verts}, faces={self.n_faces}, "
            f"joints={self.n_joints}, betas={self.n_betas}, hash={self.hash})"
        )

    def _betas(self, betas: np.ndarray | None, n: int) -> np.ndarray:
        if betas is None:
            return np.zeros((n, self.n_betas), np.float32)
        betas = np.asarray(betas, np.float32)
        if betas.ndim != 2 or betas.shape[0] != n or betas.shape[1] > self.n_betas:
            raise ValueError(f"betas must be (N={n}, <= {self.n_betas}), got {betas.shape}")
        return betas

    def shape(self, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Shaped rest mesh ``(N,V,3)`` and rest joints ``(N,J,3)`` for betas ``(N,K)``, K <= B."""
        betas = self._betas(betas, np.shape(betas)[0])
        n, k = betas.shape
        basis = self.shapedirs[:, :, :k].reshape(-1, k)
        v_shaped = self.v_template + (betas @ basis.T).reshape(n, -1, 3)
        joint_basis = self.J_shapedirs[:, :, :k].reshape(-1, k)
        joints = self.J_template + (betas @ joint_basis.T).reshape(n, -1, 3)
        return v_shaped, joints

    def forward(
        self, rotmats: np.ndarray, betas: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Pose the body: rotmats ``(N,J,3,3)``, betas ``(N,K)`` -> vertices, joints (float32).

        SMPL semantics: rotation 0 is the global orientation, the others are relative to the
        parent joint; pose correctives apply when ``posedirs`` is present. Returns vertices
        ``(N,V,3)`` and posed joints ``(N,J,3)`` in the body frame (no translation).
        """
        rotmats = np.asarray(rotmats, np.float32)
        n_joints = self.n_joints
        if rotmats.ndim != 4 or rotmats.shape[1:] != (n_joints, 3, 3):
            raise ValueError(f"rotmats must be (N, {n_joints}, 3, 3), got {rotmats.shape}")
        n = rotmats.shape[0]
        v_posed, rest = self.shape(self._betas(betas, n))
        if self.posedirs is not None:
            feature = (rotmats[:, 1:] - np.eye(3, dtype=np.float32)).reshape(n, -1)
            v_posed = v_posed + (feature @ self.posedirs.reshape(-1, feature.shape[1]).T).reshape(
                n, -1, 3
            )
        # Forward kinematics, parents before children: world rotation and position per joint.
        world_r = [rotmats[:, 0]]
        world_t = [rest[:, 0]]
        for i in range(1, n_joints):
            p = self.parents[i]
            world_r.append(world_r[p] @ rotmats[:, i])
            offset = (rest[:, i] - rest[:, p])[..., None]
            world_t.append(world_t[p] + (world_r[p] @ offset)[..., 0])
        g_r = np.stack(world_r, axis=1)
        joints = np.stack(world_t, axis=1)
        # Skinning transforms move rest-pose points: x -> G_R (x - J_rest) + J_posed.
        g_t = joints - (g_r @ rest[..., None])[..., 0]
        blend = np.concatenate([g_r.reshape(n, n_joints, 9), g_t], axis=2)  # (N,J,12)
        # One GEMM for all samples, component-major (N,12,V) so the per-vertex 3x3 products
        # below run on contiguous rows (much faster than 3x3 matmuls batched over vertices).
        per_vertex = (blend.transpose(0, 2, 1).reshape(n * 12, n_joints) @ self.weights.T).reshape(
            n, 12, -1
        )
        x, y, z = (v_posed[..., c] for c in range(3))
        vertices = np.stack(
            [
                per_vertex[:, 3 * c] * x
                + per_vertex[:, 3 * c + 1] * y
                + per_vertex[:, 3 * c + 2] * z
                + per_vertex[:, 9 + c]
                for c in range(3)
            ],
            axis=-1,
        )
        return vertices, joints

    __call__ = forward
