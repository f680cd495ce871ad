"""HEMlets PoSh: the ``paper`` variant (official pose network + hmrt's PoSh) and ``edge``."""

from hmrt.train.models.hemlets.config import HemletsConfig
from hmrt.train.models.hemlets.joints import (
    BODY_TO_HEMLETS,
    HEMLETS_FLIP_PAIRS,
    HEMLETS_JOINT_NAMES,
    HEMLETS_PARTS,
    body_to_hemlets,
)
from hmrt.train.models.hemlets.model import Hemlets

__all__ = [
    "BODY_TO_HEMLETS",
    "HEMLETS_FLIP_PAIRS",
    "HEMLETS_JOINT_NAMES",
    "HEMLETS_PARTS",
    "Hemlets",
    "HemletsConfig",
    "body_to_hemlets",
]
