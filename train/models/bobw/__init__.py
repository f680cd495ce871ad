"""BoBW: DMP dense maps, learned IK with the body model, UV inpainting (``model.py``)."""

from hmrt.train.models.bobw.config import BoBWConfig
from hmrt.train.models.bobw.model import BoBW

__all__ = ["BoBW", "BoBWConfig"]
