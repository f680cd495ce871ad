"""DecoMR: the ``paper`` variant (official architecture) and the ``edge`` variant."""

from hmrt.train.models.decomr.config import DecoMRConfig
from hmrt.train.models.decomr.model import DecoMR

__all__ = ["DecoMR", "DecoMRConfig"]
