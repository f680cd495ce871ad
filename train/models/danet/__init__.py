"""DaNet: the ``paper`` variant (official architecture) and the ``edge`` variant."""

from hmrt.train.models.danet.config import DaNetConfig
from hmrt.train.models.danet.model import DaNet

__all__ = ["DaNet", "DaNetConfig"]
