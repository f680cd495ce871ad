"""HEMlets training targets, made in torch on the collated batch (research seed-hemlets-posh.md
§1.4.1, §1.8, §1.9).

The data pipeline already crops, augments and flips every sample and hands over the body's 24
joints: ``joints2d`` (normalised crop coordinates in [-1, 1]), ``joints3d`` (camera frame, metres,
joint 0 at the origin) and their visibilities. HEMlets' 18-joint targets follow from those by a
constant linear map (``body_to_hemlets``), so they are made here, on the training device, in one
vectorised pass per batch (no per-sample Python, cheap on a CPU), rather than in every data
pipeline. Flips need no extra work: the pipeline mirrors and left/right-permutes the 24 joints
before this point, and the linear map sends each body joint to its own HEMlets joint, so the
18-joint targets come out flipped and permuted as well (``HEMLETS_FLIP_PAIRS`` is then only what
the model's flip test needs).

Conventions (the model's contract; DESIGN.md, the HEMlets model module):

* **Volume coordinates** ``joints_vol (N, 18, 3)`` in [-0.5, 0.5]: ``x = px / W - 0.5`` (so
  ``x = x_n / 2`` for hmrt's normalised ``x_n = 2 px / W - 1``), the same for y; ``z = (Z - Z_root)
  / depth_range_m``, root-relative metres over the volume's depth range (2 m official).
* **Map pixels.** The h x w maps (2D heatmaps, HEMlets) share the feature grid of the volume,
  whose soft-argmax puts bin ``i`` at ``i / (w - 1) - 0.5``; so a joint sits at map column
  ``u = (x + 0.5) (w - 1)`` (row likewise). Keeping the maps on the volume's grid means the
  features the HEMlets encoder passes on are aligned with the bins they feed.
* **Gaussians** are peak-normalised (max 1 at the joint), ``exp(-d^2 / 2 sigma^2)`` with
  ``sigma`` in map pixels (default 1.5 at 56x56 or 64x64: the paper leaves it open, research
  §1.4.1 suggests 1-2).
* **HEMlets** ``(N, 42, h, w)``, part-major: part k owns channels ``3k .. 3k+2`` =
  ``[T^-1_k, T^0_k, T^+1_k]`` (Eq. 2). The parent's Gaussian goes in ``T^0``; the child's in
  ``T^+1`` when it is closer to the camera than the parent by more than ``eps_k``, in ``T^-1``
  when farther by more than ``eps_k``, else in ``T^0`` with the parent (pixel-wise max, so two
  touching peaks stay at 1). ``eps_k = 0.5 |B_k|`` (adaptive, Eq. 1): the 3D length of the part,
  so ``T^0`` means a tilt out of the image plane below 30 degrees. Camera +Z looks forward, so a
  larger Z is farther.
* **Masks.** A HEMlets joint is known in 2D (3D) when every body joint it is made of is
  (``joints2d_vis`` > 0; ``joints3d_vis`` > 0 and ``has_3d``). Lambda (Eq. 3) keeps a part's
  three maps when both its joints are known in 2D and 3D (an unknown depth order or an
  unlabelled or out-of-crop joint drops the part, research §1.9); 2D heatmaps need the joint in
  2D; ``joints_vol`` x, y need it in 2D and z needs it, and the root, in 3D (lambda of Eq. 6).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

Mapper = Callable[[Tensor], Tensor]


def joint_map_matrix(mapper: Mapper, n_body: int = 24) -> Tensor:
    """The ``(n_out, n_body)`` matrix ``W`` of a linear joint map ``mapper((..., n_body, 3))``.

    Probed with one-hot skeletons; raises ``ValueError`` unless the map is linear (checked on a
    random skeleton) with rows summing to 1 (an affine combination of body joints, so it also
    maps 2D projections and commutes with root subtraction and mirroring).
    """
    eye = torch.eye(n_body, dtype=torch.float64)
    probe = eye[:, :, None].expand(n_body, n_body, 3).clone()  # skeleton i: joint i at (1,1,1)
    w = mapper(probe)[..., 0].T.contiguous()  # (n_out, n_body)
    x = torch.randn(2, n_body, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    if not torch.allclose(mapper(x), torch.einsum("ob,nbc->noc", w, x), atol=1e-9):
        raise ValueError("the joint map is not linear in the body joints")
    if not torch.allclose(w.sum(dim=1), torch.ones(w.shape[0], dtype=w.dtype), atol=1e-9):
        raise ValueError("each mapped joint must be an affine combination (weights sum to 1)")
    return w.float()


def map_joints(w: Tensor, joints: Tensor) -> Tensor:
    """Apply a joint map ``W (O, B)`` to points ``(N, B, C)`` -> ``(N, O, C)``."""
    return torch.matmul(w.to(joints.device, joints.dtype), joints)


def map_known(w: Tensor, known: Tensor) -> Tensor:
    """``(N, O)``: 1 where every body joint with a non-zero weight is known (``known (N, B)``)."""
    support = (w != 0).to(known.device)  # (O, B)
    k = (known > 0)[:, None, :].expand(-1, support.shape[0], -1)  # (N, O, B)
    return torch.where(support[None], k, torch.ones_like(k)).all(dim=-1).float()


def map_pixels(xy_vol: Tensor, size: tuple[int, int]) -> Tensor:
    """Volume coordinates ``(..., 2)`` in [-0.5, 0.5] -> map pixels ``(u, v)`` on an h x w grid
    whose bin ``i`` sits at ``i / (n - 1) - 0.5`` (the volume's soft-argmax grid)."""
    h, w = size
    scale = torch.tensor([w - 1.0, h - 1.0], device=xy_vol.device, dtype=torch.float32)
    return (xy_vol.float() + 0.5) * scale


def gaussian_maps(uv: Tensor, size: tuple[int, int], sigma: float) -> Tensor:
    """Peak-1 Gaussians ``(N, J, h, w)`` centred at map pixels ``uv (N, J, 2)``, std ``sigma``.

    Separable (a product of a row and a column profile), so the cost is one outer product.
    """
    h, w = size
    xs = torch.arange(w, device=uv.device, dtype=torch.float32)
    ys = torch.arange(h, device=uv.device, dtype=torch.float32)
    gx = torch.exp(-((xs - uv[..., 0:1].float()) ** 2) / (2.0 * sigma**2))  # (N, J, w)
    gy = torch.exp(-((ys - uv[..., 1:2].float()) ** 2) / (2.0 * sigma**2))  # (N, J, h)
    return gy[..., :, None] * gx[..., None, :]


def part_polarity(joints3d: Tensor, parts: Tensor, eps_ratio: float = 0.5) -> Tensor:
    """Tri-state depth order ``r (N, K)`` of each part's child vs parent (Eq. 1), int64.

    ``r = +1`` when ``z_p - z_c > eps_k`` (child closer to the camera), ``-1`` when ``z_p - z_c <
    -eps_k`` (farther), else 0; ``eps_k = eps_ratio * |B_k|`` with ``|B_k|`` the part's 3D length.
    """
    parent, child = joints3d[:, parts[:, 0]], joints3d[:, parts[:, 1]]  # (N, K, 3)
    eps = eps_ratio * (child - parent).norm(dim=-1)
    dz = parent[..., 2] - child[..., 2]
    return (dz > eps).long() - (dz < -eps).long()


def hemlet_maps(joint_maps: Tensor, polarity: Tensor, parts: Tensor) -> Tensor:
    """HEMlets ``(N, 3K, h, w)`` from per-joint Gaussians ``(N, J, h, w)`` and polarities (N, K).

    Part-major ``[T^-1, T^0, T^+1]`` per part; parent in ``T^0``, child in ``T^{r}``, combined by
    pixel-wise max (the two peaks overlap only in ``T^0``, when ``r = 0``).
    """
    n, _, h, w = joint_maps.shape
    k = parts.shape[0]
    parent = joint_maps[:, parts[:, 0]]  # (N, K, h, w)
    child = joint_maps[:, parts[:, 1]]
    slot = torch.nn.functional.one_hot(polarity + 1, 3).to(joint_maps.dtype)  # (N, K, 3)
    zero_slot = torch.tensor([0.0, 1.0, 0.0], device=joint_maps.device, dtype=joint_maps.dtype)
    maps = torch.maximum(
        slot[..., None, None] * child[:, :, None], zero_slot[:, None, None] * parent[:, :, None]
    )  # (N, K, 3, h, w)
    return maps.reshape(n, 3 * k, h, w)


@dataclass
class HemletsTargets:
    """Everything HEMlets' intermediate and joint losses compare against (one batch).

    ``hemlets (N, 3K, h, w)`` + ``hemlet_mask (N, K)`` (Lambda per part) + ``polarity (N, K)``;
    ``heatmaps (N, J, h, w)`` + ``heatmap_mask (N, J)``; ``joints_vol (N, J, 3)`` +
    ``joints_vol_mask (N, J, 3)`` (x, y: known in 2D; z: known in 3D, lambda of Eq. 6);
    ``joints3d (N, J, 3)`` root-relative metres and ``known3d (N, J)`` for the joints-only metric.
    """

    hemlets: Tensor
    hemlet_mask: Tensor
    polarity: Tensor
    heatmaps: Tensor
    heatmap_mask: Tensor
    joints_vol: Tensor
    joints_vol_mask: Tensor
    joints3d: Tensor
    known3d: Tensor


def make_targets(
    joints2d: Tensor,
    joints3d: Tensor,
    w: Tensor,
    parts: Sequence[tuple[int, int]] | Tensor,
    size: tuple[int, int],
    vis2d: Tensor | None = None,
    vis3d: Tensor | None = None,
    has_3d: Tensor | None = None,
    sigma: float = 1.5,
    eps_ratio: float = 0.5,
    depth_range_m: float = 2.0,
    root: int = 0,
) -> HemletsTargets:
    """Targets from body joints: ``joints2d (N, B, 2)`` normalised crop coordinates in [-1, 1],
    ``joints3d (N, B, 3)`` camera-frame metres (any origin), visibilities ``(N, B)`` and the
    per-sample ``has_3d (N,)``; ``w (J, B)`` the joint map (:func:`joint_map_matrix`), ``parts``
    ``(K, 2)`` (parent, child) pairs of mapped joints, ``size`` the maps' (h, w). See the module
    docstring for every convention."""
    n, b = joints2d.shape[:2]
    dev = joints2d.device
    parts_t = torch.as_tensor(parts, dtype=torch.long, device=dev).reshape(-1, 2)
    ones = torch.ones(n, b, device=dev)
    vis2d = ones if vis2d is None else vis2d.float()
    vis3d = ones if vis3d is None else vis3d.float()
    if has_3d is not None:
        vis3d = vis3d * (has_3d.float().reshape(n, 1) > 0)
    with torch.no_grad():
        w = w.to(dev, torch.float32)
        j2 = map_joints(w, joints2d[..., :2].float())  # (N, J, 2) in [-1, 1]
        j3 = map_joints(w, joints3d.float())
        j3 = j3 - j3[:, root : root + 1]
        known2d = map_known(w, vis2d)  # (N, J)
        known3d_abs = map_known(w, vis3d)  # depth order needs no root
        known3d = known3d_abs * known3d_abs[:, root : root + 1]  # z is relative to the root
        xy = j2 * 0.5  # hmrt's [-1, 1] crop coordinates -> the volume's [-0.5, 0.5]
        joints_vol = torch.cat([xy, j3[..., 2:3] / float(depth_range_m)], dim=-1)
        vol_mask = torch.stack([known2d, known2d, known3d], dim=-1)
        maps = gaussian_maps(map_pixels(xy, size), size, sigma)  # (N, J, h, w)
        polarity = part_polarity(j3, parts_t, eps_ratio)
        hem = hemlet_maps(maps, polarity, parts_t)
        p, c = parts_t[:, 0], parts_t[:, 1]
        lam = known2d[:, p] * known2d[:, c] * known3d_abs[:, p] * known3d_abs[:, c]
    return HemletsTargets(hem, lam, polarity, maps, known2d, joints_vol, vol_mask, j3, known3d)
