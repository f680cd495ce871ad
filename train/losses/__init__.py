"""Training losses: term functions by idea (IUV, keypoints, SMPL) and DaNet's weighted criterion."""

from hmrt.train.losses.config import DEFAULT_NORMS, DEFAULT_WEIGHTS, PRETRAIN_TERMS, LossConfig
from hmrt.train.losses.danet import BATCH_KEYS, PRED_KEYS, DanetCriterion

__all__ = [
    "BATCH_KEYS",
    "DEFAULT_NORMS",
    "DEFAULT_WEIGHTS",
    "PRED_KEYS",
    "PRETRAIN_TERMS",
    "DanetCriterion",
    "LossConfig",
]
