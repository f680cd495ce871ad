"""Training losses: term functions by idea (IUV, keypoints, SMPL) and each model's criterion.

:func:`build_criterion` picks the criterion of a built model by its registry name and
:func:`loss_config_class` the matching loss-config dataclass (``TrainConfig.loss``): DaNet's
:class:`LossConfig` (also the default for models without their own, e.g. test toys),
:class:`DecoMRLossConfig`, :class:`HemletsLossConfig`, :class:`HkmrLossConfig` or
:class:`BoBWLossConfig`.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from hmrt.train.losses.bobw import BOBW_WEIGHTS, BoBWCriterion, BoBWLossConfig
from hmrt.train.losses.config import DEFAULT_NORMS, DEFAULT_WEIGHTS, PRETRAIN_TERMS, LossConfig
from hmrt.train.losses.danet import BATCH_KEYS, PRED_KEYS, DanetCriterion
from hmrt.train.losses.decomr import DECOMR_WEIGHTS, DecoMRCriterion, DecoMRLossConfig
from hmrt.train.losses.hemlets import HEMLETS_WEIGHTS, HemletsCriterion, HemletsLossConfig
from hmrt.train.losses.hkmr import HKMR_WEIGHTS, HkmrCriterion, HkmrLossConfig

LOSS_CONFIGS: dict[str, type] = {
    "bobw": BoBWLossConfig,
    "decomr": DecoMRLossConfig,
    "hemlets": HemletsLossConfig,
    "hkmr": HkmrLossConfig,
}
"""Model registry name -> its loss-config class (absent: DaNet's :class:`LossConfig`)."""


def loss_config_class(model_name: str) -> type:
    """The loss-config dataclass ``TrainConfig.loss`` holds for ``model_name``."""
    return LOSS_CONFIGS.get(model_name, LossConfig)


def build_criterion(model: nn.Module, config: Any = None) -> nn.Module:
    """The criterion of a built zoo model: ``criterion(pred, batch, pretrain) -> (loss, terms)``.

    ``config``: the model's loss config (or its dict form; None: defaults). Every criterion has
    ``.body`` (the body layer that poses ground-truth meshes, also used by evaluation) and
    ``.skipped`` (enabled terms whose inputs were missing).
    """
    name = getattr(getattr(model, "config", None), "name", "")
    cls = loss_config_class(name)
    if config is None or isinstance(config, dict):
        config = cls.from_dict(config)
    if not isinstance(config, cls):
        raise TypeError(f"{name or type(model).__name__}: loss config must be {cls.__name__}")
    if name == "bobw":
        return BoBWCriterion.for_model(model, config)
    if name == "decomr":
        return DecoMRCriterion.for_model(model, config)
    if name == "hemlets":
        return HemletsCriterion.for_model(model, config)
    if name == "hkmr":
        return HkmrCriterion.for_model(model, config)
    return DanetCriterion.for_model(model, config)


__all__ = [
    "BATCH_KEYS",
    "BOBW_WEIGHTS",
    "DECOMR_WEIGHTS",
    "DEFAULT_NORMS",
    "DEFAULT_WEIGHTS",
    "HEMLETS_WEIGHTS",
    "HKMR_WEIGHTS",
    "PRED_KEYS",
    "PRETRAIN_TERMS",
    "BoBWCriterion",
    "BoBWLossConfig",
    "DanetCriterion",
    "DecoMRCriterion",
    "DecoMRLossConfig",
    "HemletsCriterion",
    "HemletsLossConfig",
    "HkmrCriterion",
    "HkmrLossConfig",
    "LossConfig",
    "build_criterion",
    "loss_config_class",
]
