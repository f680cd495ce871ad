"""The model zoo: a registry and one factory, ``build(name, variant, body, **overrides)``.

Importing this package registers every model. See :mod:`hmrt.train.models.registry` for the
factory and :mod:`hmrt.train.models.base` for the output contract every model follows.
"""

from hmrt.train.models import (
    bobw,  # noqa: F401  (registers "bobw")
    danet,  # noqa: F401  (registers "danet")
    decomr,  # noqa: F401  (registers "decomr")
    hemlets,  # noqa: F401  (registers "hemlets")
    hkmr,  # noqa: F401  (registers "hkmr")
)
from hmrt.train.models.base import OUTPUT_NAMES, BodyHead, HmrModel
from hmrt.train.models.config import ModelConfig
from hmrt.train.models.layers.precision import Fp32Module, fp32_islands
from hmrt.train.models.registry import (
    build,
    build_from_config,
    get_entry,
    list_models,
    make_config,
    register_model,
)

__all__ = [
    "OUTPUT_NAMES",
    "BodyHead",
    "Fp32Module",
    "HmrModel",
    "ModelConfig",
    "build",
    "build_from_config",
    "fp32_islands",
    "get_entry",
    "list_models",
    "make_config",
    "register_model",
]
