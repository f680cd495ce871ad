"""Training configuration: dataclasses with defaults, loaded from YAML, overridden by CLI flags.

The whole configuration is stored in every checkpoint (``asdict``), so a run can be resumed or
reproduced from the checkpoint alone. Unknown keys are errors, not silently ignored.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hmrt.runtime.errors import InputError
from hmrt.train.losses import loss_config_class

SCHEDULES = ("cosine", "step", "constant")
AMP_MODES = ("auto", "bf16", "fp16", "off")


@dataclass
class OptimConfig:
    """Adam(W) and the learning-rate schedule (linear warm-up, then step or cosine decay)."""

    lr: float = 1e-4  # DaNet: Adam 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 5.0  # max global gradient norm (0 = off)
    warmup_steps: int = 200
    schedule: str = "cosine"
    milestones: list[float] = field(default_factory=lambda: [0.5, 0.9])  # step: fraction of run
    gamma: float = 0.1  # step: LR factor at each milestone (DaNet: x0.1)
    min_lr_ratio: float = 0.02  # cosine: final LR = lr * min_lr_ratio

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise InputError(
                f"optim.schedule = '{self.schedule}': use one of {', '.join(SCHEDULES)}"
            )
        self.betas = tuple(float(b) for b in self.betas)
        self.milestones = [float(m) for m in self.milestones]


STAGED_MODELS: dict[str, tuple[str, ...]] = {"bobw": ("dmp", "ik", "uvi", "all")}
"""Models whose training is a sequence of stages (``TrainConfig.stage``)."""


@dataclass
class TrainConfig:
    """Everything a training run depends on besides the code."""

    model: str = "danet"
    variant: str = "edge"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    body: str = ""  # body-model npz ("" = the bundled model); its hash goes in checkpoints
    data: list[str] = field(default_factory=lambda: ["synth"])
    val_data: str = "synth-val"
    val_samples: int = 0  # 0: the validation set's own size
    synth_epoch: int = 8192  # synthetic samples per epoch (new samples every epoch)
    augment: dict[str, Any] = field(default_factory=dict)  # AugmentConfig overrides (training)
    steps: int = 0  # total optimiser steps; 0: derive from epochs
    epochs: int = 0  # used when steps == 0 (default 10 then)
    batch_size: int = 16
    workers: int = 2
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: str = "auto"  # auto: bf16 on GPUs that support it, else fp16; off on CPU
    threads: int = 0  # torch intra-op threads on CPU (0: torch's default)
    pretrain_iuv_steps: int = 0  # DaNet's IUV-only phase (official: 5000 steps)
    init: str = ""  # checkpoint whose weights start the run (a new stage; optimiser starts fresh)
    freeze: list[str] = field(default_factory=list)  # module-name prefixes kept fixed (eval mode)
    # module prefix -> checkpoint whose weights under that prefix replace init's (same model)
    init_modules: dict[str, str] = field(default_factory=dict)
    # Models trained in stages (bobw: dmp | ik | uvi | all; "" = all): which one this run is,
    # the steps of each stage when "all" chains them, and the IK stage's settings
    # (hmrt.train.bobw.ik_fit.IKStageConfig fields).
    stage: str = ""
    stage_steps: dict[str, int] = field(default_factory=dict)
    stage_lr: dict[str, float] = field(default_factory=dict)  # an image stage's own optim.lr
    ik: dict[str, Any] = field(default_factory=dict)
    ckpt_every: int = 500
    eval_every: int = 0  # steps between evaluations; 0: once per epoch
    log_every: int = 20
    best_metric: str = "pa_mpjpe"
    tensorboard: bool = True
    sync_bn: bool = False  # SyncBatchNorm under DDP
    optim: OptimConfig = field(default_factory=OptimConfig)
    # The model's loss config (hmrt.train.losses.loss_config_class): DaNet's LossConfig, or
    # DecoMRLossConfig for decomr, HemletsLossConfig for hemlets, HkmrLossConfig for hkmr; None
    # or a dict becomes that class in __post_init__.
    loss: Any = None

    def __post_init__(self) -> None:
        if self.amp not in AMP_MODES:
            raise InputError(f"amp = '{self.amp}': use one of {', '.join(AMP_MODES)}")
        if isinstance(self.data, str):
            self.data = [self.data]
        if isinstance(self.freeze, str):
            self.freeze = [self.freeze]
        if self.batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {self.batch_size}")
        staged = STAGED_MODELS.get(self.model)
        if self.stage and staged is None:
            raise InputError(
                f"stage = '{self.stage}': {self.model} trains in one stage (staged models: "
                f"{', '.join(STAGED_MODELS)})"
            )
        if staged is not None and self.stage and self.stage not in staged:
            raise InputError(f"stage = '{self.stage}': {self.model} has {', '.join(staged)}")
        for key in ("stage_steps", "stage_lr"):
            unknown = sorted(set(getattr(self, key)) - set(staged or ()))
            if unknown:
                raise InputError(f"{key}: unknown stage(s) {', '.join(unknown)}")
        cls = loss_config_class(self.model)
        if self.loss is None or isinstance(self.loss, dict):
            self.loss = cls.from_dict(self.loss)
        elif not isinstance(self.loss, cls):
            raise InputError(
                f"model {self.model} trains with {cls.__name__} losses, got "
                f"{type(self.loss).__name__}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML/checkpoint friendly)."""
        d = asdict(self)
        d["optim"]["betas"] = list(d["optim"]["betas"])
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> TrainConfig:
        """Build from a (partial) nested dict; unknown keys raise :class:`InputError`."""
        return _build(cls, dict(data or {}), "config")


def _build(cls, data: dict[str, Any], where: str):
    known = {f.name: f for f in dataclasses.fields(cls)}
    bad = sorted(set(data) - set(known))
    if bad:
        raise InputError(f"unknown key(s) {bad} in {where}; known: {sorted(known)}")
    kwargs = {}
    for name, value in data.items():
        if name == "optim":
            kwargs[name] = (
                value if isinstance(value, OptimConfig) else _build(OptimConfig, value, "optim")
            )
        else:
            kwargs[name] = value
    return cls(**kwargs)


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge: ``update`` wins, nested dicts merge key by key."""
    out = dict(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k not in ("model_overrides",):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file as a dict, with a clear error for a missing or malformed file."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise InputError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"{p}: not valid YAML ({exc}); fix the file") from exc
    if not isinstance(data, dict):
        raise InputError(f"{p}: the top level must be a mapping of config keys")
    return data


def dump_yaml(cfg: TrainConfig) -> str:
    """The config as YAML text (written next to the run's logs)."""
    import yaml

    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
