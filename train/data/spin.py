"""SPIN-style preprocessed npz datasets (H36M, MPI-INF-3DHP, COCO, LSP, MPII, 3DPW ...).

File format (SPIN's ``dataset_extras``; one npz per dataset split), keys used:

==============  ===============  =============================================================
key             shape            use
==============  ===============  =============================================================
``imgname``     (N,) str         image path relative to ``img_root`` (required)
``center``      (N, 2)           crop centre, image pixels (required)
``scale``       (N,)             crop side / 200 (SPIN's 1.2 margin included) (required)
``part``        (N, 24, 3)       2D keypoints in SPIN's 24-keypoint order + confidence
``S``           (N, 24, 4)       3D keypoints (metres, camera frame) + confidence
``pose``        (N, 72)          SMPL axis-angle pose, global orientation in the camera frame
``shape``       (N, 10)          SMPL betas
``has_smpl``    (N,)             1 where pose/shape are valid (default: 1 if ``pose`` exists)
==============  ===============  =============================================================

Other keys (``openpose``, ``gender``, ``maskname``, ``partname``, ...) are ignored.

SPIN's 24 keypoints are: 0 R ankle, 1 R knee, 2 R hip, 3 L hip, 4 L knee, 5 L ankle, 6 R wrist,
7 R elbow, 8 R shoulder, 9 L shoulder, 10 L elbow, 11 L wrist, 12 neck (LSP), 13 head top,
14 pelvis (MPII), 15 thorax, 16 spine (H36M), 17 jaw, 18 head (H36M), 19 nose, 20-23 eyes/ears.
hmrt's targets use the 24 SMPL joints; :data:`SPIN_TO_SMPL` maps the 12 limb keypoints and the
pelvis onto their SMPL joints (SMPL hip/neck/head joint centres differ from the annotated
landmarks by a few cm; the rest of the SMPL joints get confidence 0). 3D joints are made
root-relative to the pelvis keypoint, or to the hips' midpoint where the pelvis is missing.

SMPL parameters: ``pose``/``shape`` are parameters of the *SMPL* model. They are only turned
into supervision (``has_smpl`` = 1, and exact SMPL 3D joints) when ``body`` is an SMPL model
(6890 vertices), e.g. one converted with ``hmrt body import-smpl``. With the bundled open body
model the rotations are still returned but ``has_smpl`` is 0, and the 3D targets come from
``S`` when present.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import cv2
import numpy as np
from torch.utils.data import Dataset

from hmrt.runtime.errors import InputError
from hmrt.runtime.rotations import axis_angle_to_matrix
from hmrt.train.data.augment import AugmentConfig, make_targets, sample_augmentation
from hmrt.train.data.dataset import aug_rng
from hmrt.train.data.poses import FLIP_JOINT

SPIN_TO_SMPL: dict[int, int] = {
    0: 8, 1: 5, 2: 2, 3: 1, 4: 4, 5: 7, 6: 21, 7: 19, 8: 17, 9: 16, 10: 18, 11: 20, 14: 0,
}  # fmt: skip
"""SPIN 24-keypoint index -> SMPL joint index (the keypoints hmrt supervises)."""

SMPL_VERTS = 6890


def spin_to_smpl(keypoints: np.ndarray) -> np.ndarray:
    """SPIN-format keypoints (..., 24, C) -> SMPL-joint order (..., 24, C), unmapped rows 0."""
    k = np.asarray(keypoints)
    out = np.zeros(k.shape, dtype=np.float64)
    for src, dst in SPIN_TO_SMPL.items():
        out[..., dst, :] = k[..., src, :]
    return out


class SpinNpzDataset(Dataset):
    """Items of a SPIN npz file with images under ``img_root``, as hmrt training targets.

    ``body``: a :class:`~hmrt.runtime.body.BodyModel` (or path) of real SMPL to supervise with
    the SMPL parameters (see the module docstring); None or the open model: keypoints only.
    """

    def __init__(
        self,
        npz_path: str | os.PathLike,
        img_root: str | os.PathLike,
        augment: AugmentConfig | None = None,
        body=None,
        aug_seed: int | None = None,
    ):
        self.path = Path(npz_path)
        self.img_root = Path(img_root)
        self.augment = augment or AugmentConfig()
        self.aug_seed = aug_seed
        try:
            with np.load(self.path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except FileNotFoundError:
            raise InputError(f"{self.path}: SPIN npz file not found") from None
        except (OSError, ValueError) as exc:
            raise InputError(f"{self.path}: not a readable plain-array npz ({exc})") from None
        missing = [k for k in ("imgname", "center", "scale") if k not in data]
        if missing:
            raise InputError(
                f"{self.path}: missing SPIN keys {missing}; expected imgname, center, scale "
                "and keypoints (part and/or S)"
            )
        n = len(data["imgname"])
        self.imgname = data["imgname"].astype(str)
        self.center = data["center"].astype(np.float64).reshape(n, 2)
        self.scale = data["scale"].astype(np.float64).reshape(n)
        self.part = data["part"].astype(np.float64) if "part" in data else np.zeros((n, 24, 3))
        self.S = data["S"].astype(np.float64) if "S" in data else None
        self.pose = data["pose"].astype(np.float64) if "pose" in data else None
        self.shape = data["shape"].astype(np.float64) if "shape" in data else None
        if "has_smpl" in data:
            self.has_smpl = data["has_smpl"].astype(np.float64).reshape(n)
        else:
            self.has_smpl = np.full(n, float(self.pose is not None and self.shape is not None))
        if isinstance(body, (str, os.PathLike)):
            from hmrt.runtime.body import BodyModel

            body = BodyModel(body)
        self.body = body
        self.smpl_body = body is not None and body.n_verts == SMPL_VERTS
        if self.pose is not None and not self.smpl_body and self.has_smpl.any():
            warnings.warn(
                f"{self.path}: SMPL pose/shape are not used as supervision without an SMPL body "
                "model (convert one with 'hmrt body import-smpl FILE'); using keypoints only",
                stacklevel=2,
            )

    def __len__(self) -> int:
        return len(self.imgname)

    def load_image(self, index: int) -> np.ndarray:
        """The RGB uint8 image of item ``index``."""
        path = self.img_root / self.imgname[index]
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise InputError(
                f"{path}: image of item {index} of {self.path} not found or unreadable; "
                "check img_root"
            )
        return np.ascontiguousarray(img[..., ::-1])

    def __getitem__(self, index: int) -> dict:
        index = int(index)
        image = self.load_image(index)
        rng = aug_rng(self.aug_seed, index)
        aug = sample_augmentation(rng, self.augment)
        joints2d = spin_to_smpl(self.part[index])
        rotmats = betas = joints3d = conf3d = None
        has_smpl = bool(self.has_smpl[index] > 0) and self.pose is not None
        if self.pose is not None and self.shape is not None:
            rotmats = axis_angle_to_matrix(self.pose[index].reshape(24, 3))
            betas = self.shape[index]
        use_smpl = has_smpl and self.smpl_body
        if use_smpl:
            _, j = self.body.forward(rotmats[None], betas[None, : self.body.n_betas])
            joints3d, conf3d = j[0], np.ones(24)
        elif self.S is not None and self.S[index, :, 3].any():
            s = spin_to_smpl(self.S[index])
            if s[0, 3] <= 0 and s[1, 3] > 0 and s[2, 3] > 0:
                s[0] = (s[1] + s[2]) / 2  # no pelvis: the hips' midpoint is the root (as SPIN)
            joints3d, conf3d = s[:, :3], s[:, 3]
        out = make_targets(
            image,
            self.center[index],
            float(self.scale[index]),
            aug,
            self.augment,
            FLIP_JOINT if getattr(self.body, "flip_joint", None) is None else self.body.flip_joint,
            joints2d,
            joints3d=joints3d,
            joints3d_conf=conf3d,
            rotmats=rotmats,
            betas=betas,
            has_smpl=use_smpl,
        )
        out["index"] = np.int64(index)
        return out
