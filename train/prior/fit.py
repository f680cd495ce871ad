"""Training the pose-prior VAE (``hmrt train-prior``): data, loop, checkpoints, the prior file.

A run directory holds::

    poses.npz        the training and validation poses (drawn once; reused on --resume)
    train_log.csv    one row per epoch: losses, validation, KL of sampled vs noise poses
    last.pt          the whole VAE + optimiser + schedule + RNG (resume), every ckpt_every epochs
    pose_prior.pt    the encoder alone: the file HKMR's ``loss.prior`` points at
                     (hmrt.train.prior.file), rewritten with every checkpoint

The VAE is small (69 numbers in, two 256-wide layers each way): the default run (20,000 poses,
30 epochs) is about a minute of one CPU core, plus ~1 ms per pose to draw the poses from the
synthetic engine.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hmrt.runtime.atomic import atomic_path
from hmrt.runtime.errors import InputError
from hmrt.train.prior.data import engine_body_poses, random_rotation_poses
from hmrt.train.prior.file import save_pose_prior
from hmrt.train.prior.vae import PosePriorConfig, PosePriorVAE
from hmrt.train.rotations import axis_angle_to_matrix, geodesic_distance

RUN_FORMAT = "hmrt-pose-prior-run"
LOG_COLUMNS = (
    "step",
    "epoch",
    "lr",
    "loss",
    "recon",
    "kl",
    "val_recon",
    "val_error_deg",
    "val_kl",
    "noise_kl",
    "noise_above_p99",
    "time_s",
    "cpu_s",
)


@dataclass
class PriorTrainConfig:
    """Everything a prior-training run depends on besides the code (stored in ``last.pt``).

    ``poses``/``val_poses`` drawn from the synthetic engine with ``seed`` (validation from
    ``seed + 1``); ``kl_weight`` is beta of the beta-VAE objective (reconstruction: squared
    Frobenius distance of the 23 rotation matrices, summed); Adam(W) with linear warm-up and
    cosine decay to ``min_lr_ratio``; ``noise_poses`` uniformly random joint rotations for the
    behavioural check.
    """

    poses: int = 20000
    val_poses: int = 1000
    noise_poses: int = 1000
    epochs: int = 30
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    min_lr_ratio: float = 0.02
    grad_clip: float = 10.0
    kl_weight: float = 5e-3
    seed: int = 0
    ckpt_every: int = 5
    model: PosePriorConfig = field(default_factory=PosePriorConfig)

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            self.model = PosePriorConfig.from_dict(self.model)
        for name in ("poses", "val_poses", "noise_poses", "epochs", "batch_size", "ckpt_every"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"train-prior: {name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size > self.poses:
            raise InputError(
                f"train-prior: batch size {self.batch_size} is larger than --poses {self.poses}"
            )
        if self.kl_weight < 0 or self.lr <= 0:
            raise InputError("train-prior: kl_weight must be >= 0 and lr > 0")

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (checkpoint friendly)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PriorTrainConfig:
        """Build from a dict (unknown keys are errors)."""
        known = {f.name for f in dataclasses.fields(cls)}
        bad = sorted(set(data) - known)
        if bad:
            raise InputError(f"unknown key(s) {bad} in the prior-training config")
        return cls(**data)


def load_poses(out: Path, cfg: PriorTrainConfig, progress: bool) -> dict[str, np.ndarray]:
    """The run's poses: ``poses.npz`` when it matches ``cfg`` (same counts and seed), else drawn
    from the engine and written there atomically."""
    path = out / "poses.npz"
    want = {"seed": cfg.seed, "train": cfg.poses, "val": cfg.val_poses, "noise": cfg.noise_poses}
    if path.is_file():
        with np.load(path) as data:
            have = {
                "seed": int(data["seed"]),
                **{k: len(data[k]) for k in ("train", "val", "noise")},
            }
            if have == want:
                return {k: np.asarray(data[k]) for k in ("train", "val", "noise")}
    poses = {
        "train": engine_body_poses(cfg.poses, cfg.seed, progress),
        "val": engine_body_poses(cfg.val_poses, cfg.seed + 1, progress),
        "noise": random_rotation_poses(cfg.noise_poses, cfg.seed, cfg.model.joints),
    }
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        np.savez(f, seed=np.int64(cfg.seed), **poses)
    return poses


@torch.no_grad()
def evaluate_prior(vae: PosePriorVAE, val: torch.Tensor, noise: torch.Tensor) -> dict[str, float]:
    """Validation numbers in eval mode (the encoder as HKMR uses it: running BatchNorm
    statistics, no dropout, the code is the posterior mean).

    ``val_recon`` the per-pose reconstruction sum; ``val_error_deg`` the mean joint angle
    error of the reconstruction; ``val_kl``/``noise_kl`` the mean KL of held-out engine poses
    and of uniformly random joint rotations; ``noise_above_p99`` the fraction of noise poses
    whose KL exceeds the 99th percentile of the held-out poses' (1.0: the prior tells them all
    apart).
    """
    was = vae.training
    vae.eval()
    try:
        decoded, _, _ = vae(val)
        target = axis_angle_to_matrix(val)
        recon = (decoded - target).square().flatten(1).sum(dim=1).mean()
        err = torch.rad2deg(geodesic_distance(decoded, target)).mean()
        kl_val = vae.encoder.kl(val)
        kl_noise = vae.encoder.kl(noise)
        p99 = torch.quantile(kl_val, 0.99)
    finally:
        vae.train(was)
    return {
        "val_recon": float(recon),
        "val_error_deg": float(err),
        "val_kl": float(kl_val.mean()),
        "noise_kl": float(kl_noise.mean()),
        "noise_above_p99": float((kl_noise > p99).float().mean()),
    }


def _provenance(cfg: PriorTrainConfig) -> dict[str, Any]:
    from hmrt import __version__
    from hmrt.train.data.synth import GENERATOR_VERSION

    return {
        "trained_on": (
            "hmrt's synthetic-engine pose sampler (SyntheticGenerator.sample_body with the "
            f"default SynthConfig, generator version {GENERATOR_VERSION}): hand-written key "
            "poses, blends, joint-limit draws, mirrored, self-collisions re-drawn"
        ),
        "poses": cfg.poses,
        "seed": cfg.seed,
        "command": (
            f"hmrt train-prior --poses {cfg.poses} --epochs {cfg.epochs} "
            f"--batch-size {cfg.batch_size} --lr {cfg.lr:g} --kl-weight {cfg.kl_weight:g} "
            f"--hidden {cfg.model.hidden} --latent {cfg.model.latent} --seed {cfg.seed}"
        ),
        "license": "Apache-2.0 (trained by hmrt from its own sampler; no third-party data)",
        "hmrt_version": __version__,
        "date": time.strftime("%Y-%m-%d"),
    }


class PriorTrainer:
    """Fit a :class:`PosePriorVAE` on the engine's poses; see the module docstring."""

    def __init__(
        self, cfg: PriorTrainConfig, out: str | Path, resume: bool = False, progress: bool = True
    ):
        from hmrt.train.config import OptimConfig
        from hmrt.train.schedule import build_scheduler

        self.out = Path(out)
        self.progress = progress
        last = self.out / "last.pt"
        state = None
        if resume:
            state = read_run(last)
            stored = PriorTrainConfig.from_dict(state["train_config"])
            cfg = dataclasses.replace(stored, epochs=cfg.epochs)  # --epochs may extend a run
        elif last.is_file():
            raise InputError(
                f"{self.out} already holds a prior run (last.pt); pass --resume or choose a new --out"
            )
        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        self.vae = PosePriorVAE(cfg.model)
        self.steps_per_epoch = cfg.poses // cfg.batch_size
        self.total_steps = cfg.epochs * self.steps_per_epoch
        self.optimizer = torch.optim.AdamW(
            self.vae.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
        )
        optim = OptimConfig(
            lr=cfg.lr,
            warmup_steps=cfg.warmup_steps,
            schedule="cosine",
            min_lr_ratio=cfg.min_lr_ratio,
        )
        self.scheduler = build_scheduler(self.optimizer, self.total_steps, optim)
        self.epoch, self.step = 0, 0
        self.history: list[dict[str, float]] = []
        self.elapsed = 0.0  # wall-clock seconds of training (not of drawing poses)
        self.cpu = 0.0  # CPU seconds of this process for the same (a shared machine's truth)
        if state is not None:
            self.vae.load_state_dict(state["vae"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.epoch, self.step = int(state["epoch"]), int(state["step"])
            self.history = list(state.get("history") or [])
            self.elapsed = float(state.get("elapsed_s", 0.0))
            self.cpu = float(state.get("cpu_s", 0.0))
            torch.set_rng_state(state["torch_rng"])
        self.resumed = state is not None

    def _save(self, metrics: dict[str, float]) -> None:
        """``last.pt`` (the whole run) and ``pose_prior.pt`` (the encoder), each atomically."""
        payload = {
            "format": RUN_FORMAT,
            "version": 1,
            "train_config": self.cfg.to_dict(),
            "vae": self.vae.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "history": self.history,
            "elapsed_s": self.elapsed,
            "cpu_s": self.cpu,
            "torch_rng": torch.get_rng_state(),
        }
        with atomic_path(self.out / "last.pt") as tmp:
            torch.save(payload, tmp)
        save_pose_prior(
            self.out / "pose_prior.pt",
            self.vae.encoder,
            provenance=_provenance(self.cfg),
            metrics={
                **metrics,
                "epoch": self.epoch,
                "train_time_s": self.elapsed,
                "train_cpu_s": self.cpu,
            },
        )

    def fit(self) -> dict[str, float]:
        """Train to ``cfg.epochs``; returns the last epoch's row (losses and validation)."""
        from tqdm import tqdm

        from hmrt.train.logging_utils import CsvLog

        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        t_data, c_data = time.perf_counter(), time.process_time()
        poses = load_poses(self.out, cfg, self.progress)
        data_s = time.perf_counter() - t_data
        data_cpu = time.process_time() - c_data
        train = torch.from_numpy(poses["train"])
        val = torch.from_numpy(poses["val"])
        noise = torch.from_numpy(poses["noise"])
        log = CsvLog(self.out / "train_log.csv", LOG_COLUMNS, self.step if self.resumed else None)
        row: dict[str, float] = dict(self.history[-1]) if self.history else {}
        bar = tqdm(
            total=self.total_steps,
            initial=self.step,
            desc="train-prior",
            unit="step",
            disable=not self.progress,
            dynamic_ncols=True,
        )
        self.vae.train()
        try:
            while self.epoch < cfg.epochs:
                t0, c0 = time.perf_counter(), time.process_time()
                order = torch.randperm(
                    cfg.poses, generator=torch.Generator().manual_seed(cfg.seed * 1009 + self.epoch)
                )
                sums = {"loss": 0.0, "recon": 0.0, "kl": 0.0}
                for i in range(self.steps_per_epoch):
                    batch = train[order[i * cfg.batch_size : (i + 1) * cfg.batch_size]]
                    out = self.vae.loss(batch, cfg.kl_weight)
                    self.optimizer.zero_grad(set_to_none=True)
                    out.total.backward()
                    if cfg.grad_clip > 0:
                        torch.nn.utils.clip_grad_norm_(self.vae.parameters(), cfg.grad_clip)
                    self.optimizer.step()
                    self.scheduler.step()
                    self.step += 1
                    for k, v in zip(sums, (out.total, out.recon, out.kl)):
                        sums[k] += float(v.detach())
                    bar.update(1)
                    if not math.isfinite(sums["loss"]):
                        raise RuntimeError(
                            f"train-prior: non-finite loss at step {self.step}; lower --lr"
                        )
                self.epoch += 1
                self.elapsed += time.perf_counter() - t0
                self.cpu += time.process_time() - c0
                row = {
                    "step": self.step,
                    "epoch": self.epoch,
                    "lr": self.optimizer.param_groups[0]["lr"],
                    **{k: v / self.steps_per_epoch for k, v in sums.items()},
                    **evaluate_prior(self.vae, val, noise),
                    "time_s": self.elapsed,
                    "cpu_s": self.cpu,
                }
                self.history.append(row)
                log.write(row)
                bar.set_postfix(
                    loss=f"{row['loss']:.3g}",
                    err=f"{row['val_error_deg']:.1f}deg",
                    kl=f"{row['val_kl']:.0f}/{row['noise_kl']:.0f}",
                )
                if self.epoch % cfg.ckpt_every == 0 or self.epoch >= cfg.epochs:
                    self._save({**row, "pose_draw_s": data_s, "pose_draw_cpu_s": data_cpu})
        finally:
            bar.close()
        return {**row, "pose_draw_s": data_s, "pose_draw_cpu_s": data_cpu}


def read_run(path: Path) -> dict[str, Any]:
    """A prior run's ``last.pt``, checked."""
    if not path.is_file():
        raise InputError(f"--resume: {path} does not exist; start without --resume")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(f"{path}: cannot read this prior run ({type(exc).__name__})") from exc
    if not isinstance(state, dict) or state.get("format") != RUN_FORMAT:
        raise InputError(f"{path}: not an hmrt train-prior checkpoint")
    return state
