"""Learning-rate schedules: linear warm-up followed by step decay, cosine decay or a constant.

Expressed as a multiplier of the base LR per step (``torch.optim.lr_scheduler.LambdaLR``), so
the scheduler's state is just its step counter and resumes exactly.
"""

from __future__ import annotations

import math

import torch

from hmrt.train.config import OptimConfig


def lr_factor(step: int, total: int, cfg: OptimConfig) -> float:
    """Multiplier of ``cfg.lr`` at optimiser step ``step`` of ``total``."""
    warm = max(int(cfg.warmup_steps), 0)
    if warm and step < warm:
        return (step + 1) / warm
    if cfg.schedule == "constant" or total <= warm:
        return 1.0
    if cfg.schedule == "step":
        # Milestones <= 1 are fractions of the run, larger values absolute steps (DaNet: 30k).
        marks = [m * total if m <= 1 else m for m in cfg.milestones]
        return cfg.gamma ** sum(step >= m for m in marks)
    progress = min((step - warm) / max(total - warm, 1), 1.0)
    floor = cfg.min_lr_ratio
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int, cfg: OptimConfig
) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR over :func:`lr_factor` for a run of ``total_steps``."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps, cfg)
    )
