"""The training loop behind ``hmrt train``: one process or one rank of a torchrun DDP job.

Per step: forward (autocast on CUDA), the model's criterion, backward through a GradScaler,
gradient clipping, optimiser and LR-schedule step. Around it: logs every ``log_every`` steps
(CSV, TensorBoard, the tqdm bar), evaluation on the validation set every ``eval_every`` steps
or epoch (``best.pt`` on improvement), and ``last.pt`` every ``ckpt_every`` steps holding
everything ``--resume`` needs to continue exactly where it stopped: weights, optimiser,
scheduler, scaler, every RNG and the data position (epoch, batch).

Everything model- or data-specific is injected (model, criterion, training sources, validation
set), so tests drive the same loop with a toy model and dataset.
"""

from __future__ import annotations

import math
import random
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from hmrt.runtime.atomic import write_text_atomic
from hmrt.runtime.errors import InputError
from hmrt.train import checkpoint as ckpt_io
from hmrt.train import distributed as D
from hmrt.train.config import TrainConfig, dump_yaml
from hmrt.train.evaluate import (
    BASELINE,
    POSE_KEYS,
    EvalResult,
    evaluate,
    pose_joints_spec,
    torch_predictor,
)
from hmrt.train.logging_utils import RunLogger
from hmrt.train.sampling import EpochSampler, MixedDataset
from hmrt.train.schedule import build_scheduler

DEFAULT_EPOCHS = 10


@dataclass
class Source:
    """A training dataset with the number of samples it contributes per epoch.

    ``fresh``: indices past ``len`` are valid and new (a synthetic generator); each epoch then
    reads the next ``size`` samples instead of re-reading the same ones.
    """

    dataset: Dataset
    size: int
    fresh: bool = False
    name: str = ""


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str, dist: D.DistInfo) -> torch.device:
    """``auto`` -> CUDA (this rank's GPU) when available, else CPU; validate explicit choices."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError("--device cuda was requested but this torch has no usable CUDA GPU")
        if name == "cuda":
            name = f"cuda:{dist.local_rank}"
    return torch.device(name)


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for ``mode`` on ``device`` (None: full fp32)."""
    if mode == "off":
        return None
    if device.type == "cuda":
        if mode == "auto":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if mode == "bf16" else torch.float16
    if mode == "bf16":
        return torch.bfloat16
    if mode == "fp16":
        raise InputError("--amp fp16 needs a CUDA device; on CPU use bf16 or off")
    return None


def to_device(batch: dict, device: torch.device) -> dict:
    """Move every tensor of a collated batch to ``device`` (non-blocking from pinned memory)."""
    return {
        k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()
    }


def _worker_init(worker_id: int) -> None:
    # Each worker's numpy/python RNGs follow torch's per-worker seed (itself from the loader's
    # seeded generator), so augmentation drawn from them is reproducible run to run.
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def freeze_modules(model: nn.Module, prefixes: Sequence[str]) -> list[nn.Module]:
    """Fix the parameters under each module-name prefix; returns the modules to keep in eval.

    Used for staged training (e.g. ``img2iuv``: DaNet's stage 2 learns on a fixed stage 1, at a
    third of the cost per step, because no gradient flows back through the backbone).
    """
    modules = dict(model.named_modules())
    out = []
    for prefix in prefixes:
        if prefix not in modules or not prefix:
            tops = sorted({n.split(".")[0] for n in modules if n})
            raise InputError(
                f"freeze: '{prefix}' is not a module of {type(model).__name__}; "
                f"top-level modules: {', '.join(tops)}"
            )
        for p in modules[prefix].parameters():
            p.requires_grad_(False)
        out.append(modules[prefix])
    return out


class Trainer:
    """Fit ``model`` with ``criterion`` on ``sources``; see the module docstring.

    ``criterion(pred, batch, pretrain=bool) -> (loss, raw_terms)``; ``val_set`` items as in
    :func:`hmrt.train.evaluate.evaluate`; ``body`` builds ground-truth vertices for PVE.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        out_dir: str | Path,
        model: nn.Module,
        criterion: nn.Module,
        sources: Sequence[Source],
        val_set: Dataset | None = None,
        body: nn.Module | None = None,
        resume: bool = False,
        progress: bool = True,
        dist: D.DistInfo | None = None,
    ):
        self.cfg = cfg
        self.out = Path(out_dir)
        self.dist = dist or D.DistInfo()
        self.device = resolve_device(cfg.device, self.dist)
        self.amp = amp_dtype(cfg.amp, self.device)
        self.progress = progress and self.dist.is_main
        if cfg.threads > 0 and self.device.type == "cpu":
            torch.set_num_threads(cfg.threads)
        seed_everything(cfg.seed + self.dist.rank)

        last = self.out / "last.pt"
        if resume and not last.is_file():
            raise InputError(f"--resume: {last} does not exist; start without --resume")
        if not resume and last.is_file():
            raise InputError(
                f"{self.out} already holds a run (last.pt); pass --resume or choose a new --out"
            )

        self.frozen = freeze_modules(model, cfg.freeze)
        if cfg.sync_bn and self.dist.enabled:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model = model.to(self.device)
        self.criterion = criterion.to(self.device)
        self.body = body.to(self.device) if body is not None else None
        self.val_set = val_set
        self.sources = list(sources)

        self.sampler = EpochSampler(
            [s.size for s in self.sources],
            [s.fresh for s in self.sources],
            cfg.batch_size,
            cfg.seed,
            self.dist.rank,
            self.dist.world,
        )
        self.batches_per_epoch = self.sampler.batches_per_epoch
        epochs = cfg.epochs or DEFAULT_EPOCHS
        self.total_steps = cfg.steps or epochs * self.batches_per_epoch

        params = [p for p in self.model.parameters() if p.requires_grad]
        if not params:
            raise InputError(f"freeze {cfg.freeze} leaves no parameter to train")
        o = cfg.optim
        opt_cls = torch.optim.AdamW if o.weight_decay > 0 else torch.optim.Adam
        self.optimizer = opt_cls(params, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)
        self.scheduler = build_scheduler(self.optimizer, self.total_steps, o)
        self.scaler = torch.amp.GradScaler(
            self.device.type, enabled=self.amp == torch.float16 and self.device.type == "cuda"
        )

        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.best: float = math.inf
        self.last_metrics: dict[str, float] = {}
        if resume:
            self._load_state(last)

        self.ddp_model = self.model
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            # find_unused_parameters: the IUV-only phase and skipped terms leave heads unused.
            self.ddp_model = nn.parallel.DistributedDataParallel(
                self.model, device_ids=ids, find_unused_parameters=True
            )

        terms = list(cfg.loss.weights) if hasattr(cfg.loss, "weights") else []
        self.logger = RunLogger(
            self.out,
            ["step", "epoch", "lr", "loss", *terms, "grad_norm", "samples_per_s", "time_s"],
            [
                "step",
                "epoch",
                "mpjpe",
                "pa_mpjpe",
                "pve",
                "baseline_mpjpe",
                "baseline_pa_mpjpe",
                "baseline_pve",
                "n",
                *(POSE_KEYS if pose_joints_spec(self.model) is not None else ()),
            ],
            enabled=self.dist.is_main,
            tensorboard=cfg.tensorboard,
            resume_step=self.step if resume else None,
        )
        if self.dist.is_main:
            write_text_atomic(self.out / "config.yaml", dump_yaml(cfg))

    # -- state -------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {
            "train_config": self.cfg.to_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": ckpt_io.rng_state(),
            "position": {
                "step": self.step,
                "epoch": self.epoch,
                "batch": self.batch_in_epoch,
                "total_steps": self.total_steps,
            },
            "best": self.best,
            "metrics": self.last_metrics,
        }

    def _load_state(self, path: Path) -> None:
        ck = ckpt_io.read_checkpoint(path, map_location="cpu")
        self.model.load_state_dict(ck["state_dict"])
        self.optimizer.load_state_dict(ck["optimizer"])
        self.scheduler.load_state_dict(ck["scheduler"])
        if ck.get("scaler"):
            self.scaler.load_state_dict(ck["scaler"])
        pos = ck["position"]
        self.step, self.epoch, self.batch_in_epoch = pos["step"], pos["epoch"], pos["batch"]
        self.best = float(ck.get("best", math.inf))
        self.last_metrics = dict(ck.get("metrics") or {})
        if self.dist.is_main:
            ckpt_io.set_rng_state(ck["rng"])
        else:  # other ranks: a fresh but reproducible stream per (rank, step)
            seed_everything(self.cfg.seed + 7919 * self.dist.rank + self.step)

    def save(self, name: str, full: bool = True) -> Path | None:
        """Write ``name`` in the run directory (rank 0): full state, or weights + configs."""
        if not self.dist.is_main:
            return None
        extra = self._state()
        if not full:
            extra = {k: extra[k] for k in ("train_config", "position", "metrics")}
        return ckpt_io.save_checkpoint(self.out / name, self.model, **extra)

    # -- data --------------------------------------------------------------------------------
    def _loader(self) -> DataLoader:
        self.sampler.set_epoch(self.epoch, self.batch_in_epoch)
        gen = torch.Generator().manual_seed(self.cfg.seed * 100003 + self.epoch)
        workers = self.cfg.workers
        return DataLoader(
            MixedDataset([s.dataset for s in self.sources]),
            batch_size=self.cfg.batch_size,
            sampler=self.sampler,
            num_workers=workers,
            drop_last=True,
            pin_memory=self.device.type == "cuda",
            generator=gen,
            worker_init_fn=_worker_init if workers else None,
            persistent_workers=False,
            prefetch_factor=2 if workers else None,
        )

    # -- one step ----------------------------------------------------------------------------
    def train_step(self, batch: dict) -> tuple[float, dict[str, float], float]:
        """One optimiser step; returns (loss, raw terms, gradient norm) as floats."""
        self.ddp_model.train()
        for module in self.frozen:
            module.eval()  # frozen BatchNorm keeps its running statistics
        batch = to_device(batch, self.device)
        with torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None):
            pred = self.ddp_model(batch["image"])
        pretrain = self.step < self.cfg.pretrain_iuv_steps
        loss, terms = self.criterion(pred, batch, pretrain=pretrain)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        clip = self.cfg.optim.grad_clip
        params = [p for p in self.model.parameters() if p.grad is not None]
        if clip > 0:
            gnorm = torch.nn.utils.clip_grad_norm_(params, clip)
        else:
            gnorm = torch.linalg.vector_norm(
                torch.stack([p.grad.detach().float().norm() for p in params])
            )
        gn = float(gnorm)
        if self.scaler.is_enabled() or math.isfinite(gn):
            self.scaler.step(self.optimizer)  # the scaler itself skips non-finite fp16 steps
        else:
            warnings.warn(
                f"step {self.step}: non-finite gradient norm, update skipped", stacklevel=2
            )
        self.scaler.update()
        self.scheduler.step()
        self.step += 1
        return float(loss.detach()), {k: float(v) for k, v in terms.items()}, gn

    # -- evaluation --------------------------------------------------------------------------
    def evaluate(self) -> EvalResult | None:
        """Score the current weights on the validation set (rank 0); others wait."""
        result = None
        if self.dist.is_main and self.val_set is not None:
            predict = torch_predictor(self.model, self.device, self.amp)
            result = evaluate(
                {"model": predict},
                self.val_set,
                body=self.body,
                batch_size=self.cfg.batch_size,
                max_samples=self.cfg.val_samples,
                progress=self.progress,
            )
        D.barrier(self.dist)
        return result

    def _after_eval(self, result: EvalResult | None, pbar) -> None:
        if result is None:
            return
        m = result.metrics["model"]
        b = result.metrics.get(BASELINE, {})
        self.last_metrics = {**m, **{f"baseline_{k}": v for k, v in b.items() if k != "n"}}
        self.logger.log_eval({"step": self.step, "epoch": self.epoch, **self.last_metrics})
        msg = result.table(f"step {self.step} (epoch {self.epoch}): {self.cfg.val_data}")
        (pbar.write if pbar is not None else print)(msg)
        value = m.get(self.cfg.best_metric, math.inf)
        if value < self.best:
            self.best = value
            self.save("best.pt", full=False)

    # -- the loop ----------------------------------------------------------------------------
    def fit(self, stop_at: int | None = None) -> dict[str, float]:
        """Train until ``total_steps``; returns the last evaluation's metrics.

        ``stop_at`` ends this invocation early at that step (saving ``last.pt``) without
        changing the run's schedule, as a time-limited job would; ``--resume`` continues it.
        """
        from tqdm import tqdm

        pbar = tqdm(
            total=self.total_steps,
            initial=self.step,
            desc="train",
            unit="step",
            disable=not self.progress,
            dynamic_ncols=True,
        )
        acc: dict[str, float] = {}
        count, t0, t_start = 0, time.perf_counter(), time.perf_counter()
        evaluated_at = -1
        try:
            stop = self.total_steps if stop_at is None else min(stop_at, self.total_steps)
            while self.step < stop:
                for batch in self._loader():
                    loss, terms, gn = self.train_step(batch)
                    self.batch_in_epoch += 1
                    for k, v in {"loss": loss, **terms, "grad_norm": gn}.items():
                        acc[k] = acc.get(k, 0.0) + v
                    count += 1
                    pbar.update(1)
                    end_of_epoch = self.batch_in_epoch >= self.batches_per_epoch
                    if end_of_epoch:
                        self.epoch, self.batch_in_epoch = self.epoch + 1, 0
                    done = self.step >= self.total_steps
                    if self.step % self.cfg.log_every == 0 or done:
                        dt = time.perf_counter() - t0
                        sps = count * self.cfg.batch_size * self.dist.world / max(dt, 1e-9)
                        row = {k: v / count for k, v in acc.items()}
                        row.update(
                            step=self.step,
                            epoch=self.epoch,
                            lr=self.optimizer.param_groups[0]["lr"],
                            samples_per_s=sps,
                            time_s=time.perf_counter() - t_start,
                        )
                        self.logger.log_train(row)
                        pbar.set_postfix(loss=f"{row['loss']:.4g}", sps=f"{sps:.1f}")
                        acc, count, t0 = {}, 0, time.perf_counter()
                    due = (
                        self.step % self.cfg.eval_every == 0
                        if self.cfg.eval_every
                        else end_of_epoch
                    )
                    if due or done:
                        self._after_eval(self.evaluate(), pbar)
                        evaluated_at = self.step
                    if self.step % self.cfg.ckpt_every == 0 or done or self.step >= stop:
                        self.save("last.pt")
                    if done or end_of_epoch or self.step >= stop:
                        break
        finally:
            pbar.close()
            self.logger.close()
        if self.step >= self.total_steps and evaluated_at != self.step and self.val_set is not None:
            self._after_eval(self.evaluate(), None)
        return self.last_metrics
