"""HKMR: the ``paper`` variant (ResNet-50 + hierarchical kinematic regressor) and ``edge``."""

from hmrt.train.models.hkmr.chains import CHAIN_NAMES, CHAIN_ORDER, CHAINS, SMPL_FROM_CHAIN
from hmrt.train.models.hkmr.config import HkmrConfig
from hmrt.train.models.hkmr.model import STEP_KEYS, Hkmr
from hmrt.train.models.hkmr.regressor import (
    ChainRegressor,
    ConditionedMLP,
    HkmrRegressor,
    JointHeads,
)

__all__ = [
    "CHAINS",
    "CHAIN_NAMES",
    "CHAIN_ORDER",
    "SMPL_FROM_CHAIN",
    "STEP_KEYS",
    "ChainRegressor",
    "ConditionedMLP",
    "Hkmr",
    "HkmrConfig",
    "HkmrRegressor",
    "JointHeads",
]
