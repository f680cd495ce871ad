"""BoBW's IK stage (seed-bobw.md §2.2 stage 2): the IK nets trained alone on corrupted joints.

``ℓ_IK = ℓ_θ + ℓ_β + ℓ_ji + ℓ_vi`` (paper eq. 3), every term an L1 (mean over elements) with
weight 1: axis-angle pose, betas, ``J_refine`` and the IK mesh's root-relative vertices. Adam,
batch 64, lr 1e-3 with Martinez's exponential decay (0.96 every 100k steps). Samples come from
:mod:`hmrt.train.bobw.ik_data` (the engine's pose sampler with noise and 30% zeroing).

Two decisions the paper leaves open:

* ``ℓ_θ`` compares axis-angle vectors up to the representation's 2π equivalence: each joint's
  error is the smaller of ``|θ̂ - θ|₁`` and ``|θ̂ - (θ - 2π θ/|θ|)|₁``. In the camera frame every
  upright root is a rotation by about π (the camera's Y is down), exactly where axis-angle has
  its two representations ``±π n`` and where the engine's conversion picks one arbitrarily; a
  plain L1 would punish the right rotation. For the body joints (angles well below π) the second
  term is never the smaller, so it is the paper's L1 there.
* GIK-Net is trained on a detached ``J_refine`` (``BoBWIK.detach_refine``): with all weights 1,
  the θ and β L1s (radians, shape units) are an order of magnitude larger than the joint L1
  (metres), and would otherwise drive the inpaint net to serve θ regression rather than joint
  accuracy. Detached, each net sees its own objective and Adam's per-parameter scaling makes the
  unit mismatch harmless between the two nets.

Files in ``out_dir``: ``ik_poses.npz`` / ``ik_val_poses.npz`` (the pools), ``ik_log.csv`` (one
row per evaluation: mean training terms since the last row, validation metrics, time) and
``ik.pt`` (the IK state dict, the stage config and the final metrics).
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from hmrt.runtime import metrics
from hmrt.runtime.errors import InputError
from hmrt.train.bobw.ik_data import IKBatch, IKSampleSource, load_pose_pool, posed_targets
from hmrt.train.models.bobw.ik import BoBWIK

TERMS = ("theta", "beta", "joints", "vertices")
METRICS = (
    "j_refine_mpjpe_mm",
    "j_refine_visible_mm",
    "j_refine_occluded_mm",
    "j_initial_mpjpe_mm",
    "j_initial_visible_mm",
    "mesh_mpjpe_mm",
    "mesh_pa_mpjpe_mm",
    "pve_mm",
    "root_error_deg",
    "val_loss",
)


@dataclass
class IKStageConfig:
    """Everything the IK stage depends on besides the model and the body.

    ``pool_size`` engine poses for training (``seed``) and ``val_size`` from a separate pool
    (``seed + 1``), corrupted with ``noise_sigma`` metres per coordinate and ``drop_prob``.
    ``noise_sigma = 0.02`` (32 mm mean 3D displacement) is the paper-silent default: the size of
    a good detector's error on visible joints, large enough to teach denoising, small enough
    that the net still trusts visible joints over its pose prior.
    """

    steps: int = 20000
    batch_size: int = 64
    lr: float = 1e-3
    lr_decay: float = 0.96
    lr_decay_steps: int = 100000
    w_theta: float = 1.0
    w_beta: float = 1.0
    w_joints: float = 1.0
    w_vertices: float = 1.0
    noise_sigma: float = 0.02
    drop_prob: float = 0.3
    pool_size: int = 20000
    val_size: int = 512
    stats_samples: int = 4096
    seed: int = 0
    eval_every: int = 500
    threads: int = 1

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "pool_size", "val_size", "eval_every", "threads"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"IK stage: {name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.noise_sigma < 0 or not 0.0 <= self.drop_prob < 1.0:
            raise InputError("IK stage: lr must be > 0, noise_sigma >= 0, drop_prob in [0, 1)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def axis_angle_l1(pred: Tensor, target: Tensor) -> Tensor:
    """Mean L1 of axis-angle ``(..., 3)`` up to the 2π equivalence (module docstring)."""
    angle = target.norm(dim=-1, keepdim=True)
    other = target - (2.0 * math.pi) * target / angle.clamp(min=1e-6)
    near = (pred - target).abs().sum(-1)
    far = (pred - other).abs().sum(-1)
    return torch.minimum(near, far).mean() / 3.0


def ik_terms(
    out: dict[str, Tensor],
    batch: IKBatch,
    body_layer,
    lsp_regressor: Tensor,
    root_regressor: Tensor,
) -> tuple[dict[str, Tensor], Tensor, Tensor]:
    """The four unweighted L1 terms, and the IK mesh's (LSP-14 joints, vertices)."""
    joints, vertices = posed_targets(
        body_layer, out["pose_aa"], out["betas"], lsp_regressor, root_regressor
    )
    terms = {
        "theta": axis_angle_l1(out["pose_aa"].reshape(-1, 24, 3), batch.pose_aa.reshape(-1, 24, 3)),
        "beta": (out["betas"] - batch.betas).abs().mean(),
        "joints": (out["j_refine"] - batch.joints).abs().mean(),
        "vertices": (vertices - batch.vertices).abs().mean(),
    }
    return terms, joints, vertices


def _weighted(terms: dict[str, Tensor], cfg: IKStageConfig) -> Tensor:
    return sum(getattr(cfg, f"w_{k}") * terms[k] for k in TERMS)


def _masked_mm(err_mm: np.ndarray, mask: np.ndarray) -> float:
    """Mean of per-joint errors (mm) where ``mask``; NaN when nothing is selected."""
    return float(err_mm[mask].mean()) if mask.any() else float("nan")


@torch.no_grad()
def evaluate_ik(
    ik: BoBWIK,
    batch: IKBatch,
    body_layer,
    lsp_regressor: Tensor,
    root_regressor: Tensor,
    config: IKStageConfig | None = None,
    chunk: int = 128,
) -> dict[str, float]:
    """Metrics of ``ik`` in eval mode on ``batch`` (mm unless named otherwise):

    ``j_refine_mpjpe_mm`` (all joints; ``_visible``/``_occluded`` split by the input flags),
    ``j_initial_mpjpe_mm`` (the corrupted input itself, zeros included; ``_visible`` only the
    kept joints), ``mesh_mpjpe_mm``/``mesh_pa_mpjpe_mm`` (LSP-14 of the IK mesh; PA by
    :func:`hmrt.runtime.metrics.pa_mpjpe`), ``pve_mm`` (root-relative vertices),
    ``root_error_deg`` (geodesic error of the root orientation), ``val_loss`` (weighted ℓ_IK).
    """
    from hmrt.train.rotations import axis_angle_to_matrix, geodesic_distance

    cfg = config or IKStageConfig()
    was = ik.training
    ik.eval()
    refine, mesh_j, pve, root_deg, losses = [], [], [], [], []
    try:
        for s in range(0, len(batch), chunk):
            b = batch.slice(s, s + chunk)
            out = ik(b.j_initial, b.visible)
            terms, joints, vertices = ik_terms(out, b, body_layer, lsp_regressor, root_regressor)
            losses.append(float(_weighted(terms, cfg)) * len(b))
            refine.append(out["j_refine"].double().cpu().numpy())
            mesh_j.append(joints.double().cpu().numpy())
            pve.append(metrics.pve(vertices.cpu().numpy(), b.vertices.cpu().numpy()))
            r_pred = axis_angle_to_matrix(out["pose_aa"][:, :3])
            r_gt = axis_angle_to_matrix(b.pose_aa[:, :3])
            root_deg.append(torch.rad2deg(geodesic_distance(r_pred, r_gt)).cpu().numpy())
    finally:
        ik.train(was)
    gt = batch.joints.double().cpu().numpy()
    j_init = batch.j_initial.double().cpu().numpy()
    vis = batch.visible.cpu().numpy() > 0.5
    refine, mesh_j = np.concatenate(refine), np.concatenate(mesh_j)
    refine_err = np.linalg.norm(refine - gt, axis=-1) * 1000.0
    init_err = np.linalg.norm(j_init - gt, axis=-1) * 1000.0
    return {
        "j_refine_mpjpe_mm": float(refine_err.mean()),
        "j_refine_visible_mm": _masked_mm(refine_err, vis),
        "j_refine_occluded_mm": _masked_mm(refine_err, ~vis),
        "j_initial_mpjpe_mm": float(init_err.mean()),
        "j_initial_visible_mm": _masked_mm(init_err, vis),
        "mesh_mpjpe_mm": float(metrics.mpjpe(mesh_j, gt, root=None).mean()),
        "mesh_pa_mpjpe_mm": float(metrics.pa_mpjpe(mesh_j, gt).mean()),
        "pve_mm": float(np.concatenate(pve).mean()),
        "root_error_deg": float(np.concatenate(root_deg).mean()),
        "val_loss": float(sum(losses) / len(batch)),
    }


def bundled_root_regressor(body_layer) -> Tensor:
    """``J_regressor[0:1]`` of the bundled body, checked against ``body_layer.body_hash``."""
    from hmrt.runtime.body.model import BodyModel

    body = BodyModel(None)
    if getattr(body_layer, "body_hash", body.hash) != body.hash:
        raise InputError(
            "IK stage: the body layer is not the bundled body; pass root_regressor "
            "(J_regressor[0:1] of its body)"
        )
    return torch.from_numpy(np.array(body.J_regressor[0:1], np.float32))


def run_ik_stage(
    ik: BoBWIK,
    body_layer,
    lsp_regressor: Tensor,
    config: IKStageConfig,
    out_dir: str | Path,
    progress: bool = True,
    root_regressor: Tensor | None = None,
) -> dict[str, float]:
    """Train ``ik`` in place on the IK stage's samples; return the final validation metrics
    (:func:`evaluate_ik`) plus ``steps``, ``train_s`` and ``s_per_step``.

    ``lsp_regressor (14, V)`` and ``root_regressor (1, V)`` (default: the bundled body's
    ``J_regressor[0:1]``) are moved to the body layer's device. The joint statistics are
    measured and stored in ``ik`` only when it has none yet (a fresh net).
    """
    from tqdm import tqdm

    from hmrt.runtime.atomic import atomic_path

    cfg = config
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = next(body_layer.buffers()).device
    lsp = lsp_regressor.float().to(device)
    root = root_regressor if root_regressor is not None else bundled_root_regressor(body_layer)
    root = root.float().reshape(1, -1).to(device)
    ik.to(device)
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        pool = load_pose_pool(out / "ik_poses.npz", cfg.pool_size, cfg.seed, progress)
        val_pool = load_pose_pool(out / "ik_val_poses.npz", cfg.val_size, cfg.seed + 1, progress)
        kw = dict(noise_sigma=cfg.noise_sigma, drop_prob=cfg.drop_prob)
        source = IKSampleSource(pool, body_layer, lsp, root, seed=cfg.seed, **kw)
        val = IKSampleSource(val_pool, body_layer, lsp, root, seed=cfg.seed + 1, **kw)
        val_set = val.fixed_set(cfg.val_size)
        if not ik.has_statistics:
            ik.set_statistics(**source.statistics(cfg.stats_samples))
        torch.manual_seed(cfg.seed)
        optimizer = torch.optim.Adam(ik.parameters(), lr=cfg.lr)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: cfg.lr_decay ** (step / cfg.lr_decay_steps)
        )
        columns = ["step", "lr", "loss", *TERMS, *METRICS, "time_s"]
        log_path = out / "ik_log.csv"
        with log_path.open("w", newline="") as f:
            csv.writer(f).writerow(columns)

        def log(step: int, sums: dict[str, float], count: int, elapsed: float) -> dict:
            val_metrics = evaluate_ik(ik, val_set, body_layer, lsp, root, cfg)
            row = {"step": step, "lr": scheduler.get_last_lr()[0], "time_s": elapsed}
            row.update({k: sums[k] / max(count, 1) for k in ("loss", *TERMS)})
            row.update(val_metrics)
            with log_path.open("a", newline="") as f:
                csv.writer(f).writerow([f"{row[c]:.6g}" for c in columns])
            return val_metrics

        ik.train()
        sums, count, elapsed = dict.fromkeys(("loss", *TERMS), 0.0), 0, 0.0
        final = log(0, sums, 0, 0.0)
        bar = tqdm(range(1, cfg.steps + 1), desc="ik", unit="step", disable=not progress)
        for step in bar:
            t0 = time.perf_counter()
            batch = source.batch(cfg.batch_size)
            terms, _, _ = ik_terms(ik(batch.j_initial, batch.visible), batch, body_layer, lsp, root)
            loss = _weighted(terms, cfg)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            elapsed += time.perf_counter() - t0
            sums["loss"] += float(loss.detach())
            for k in TERMS:
                sums[k] += float(terms[k].detach())
            count += 1
            if step % cfg.eval_every == 0 or step == cfg.steps:
                final = log(step, sums, count, elapsed)
                sums, count = dict.fromkeys(sums, 0.0), 0
                bar.set_postfix(
                    refine=f"{final['j_refine_mpjpe_mm']:.1f}",
                    pa=f"{final['mesh_pa_mpjpe_mm']:.1f}",
                )
        result = {
            **final,
            "steps": cfg.steps,
            "train_s": elapsed,
            "s_per_step": elapsed / cfg.steps,
        }
        payload = {
            "format": "hmrt-bobw-ik",
            "version": 1,
            "ik": ik.state_dict(),
            "stage_config": cfg.to_dict(),
            "metrics": result,
        }
        with atomic_path(out / "ik.pt") as tmp:
            torch.save(payload, tmp)
        return result
    finally:
        torch.set_num_threads(threads)
