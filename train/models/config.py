"""Model configurations: one dataclass per model holding everything needed to rebuild it.

``config.to_dict()`` is plain JSON (tuples become lists) and ``Config.from_dict`` restores it,
so a checkpoint of ``{"config": model.config.to_dict(), "state_dict": ...}`` rebuilds the model
through :func:`hmrt.train.models.build_from_config` without any other file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar

from hmrt.runtime.errors import InputError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

C = TypeVar("C", bound="ModelConfig")


@dataclass(frozen=True)
class ModelConfig:
    """Fields every model shares: identity, input size and input normalisation (RGB, 0..1)."""

    name: str = ""
    variant: str = "paper"
    input_size: tuple[int, int] = (224, 224)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible dict of every field."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        """Rebuild a config from :meth:`to_dict` output; unknown keys are an error."""
        return cls().replace(**data)

    def replace(self: C, **overrides: Any) -> C:
        """A copy with ``overrides`` applied; lists become tuples where the field is a tuple."""
        names = {f.name: f for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            raise InputError(
                f"unknown {type(self).__name__} field(s) {', '.join(unknown)}; "
                f"valid fields: {', '.join(names)}"
            )
        fixed = {k: _coerce(getattr(self, k), v, k) for k, v in overrides.items()}
        new = dataclasses.replace(self, **fixed)
        new.validate()
        return new

    def validate(self) -> None:
        """Raise :class:`InputError` on inconsistent values; subclasses extend it."""
        if len(self.input_size) != 2 or min(self.input_size) <= 0:
            raise InputError(f"input_size must be (height, width) > 0, got {self.input_size}")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise InputError("mean and std must have 3 values (RGB)")


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _coerce(default: Any, value: Any, name: str) -> Any:
    """Give ``value`` the type of the field's default (JSON lists -> tuples, ints -> floats)."""
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)):
            raise InputError(f"config field {name} expects a list, got {value!r}")
        return tuple(value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise InputError(f"config field {name} expects true/false, got {value!r}")
        return value
    if isinstance(default, float) and isinstance(value, int):
        return float(value)
    if isinstance(default, (int, float, str)) and not isinstance(value, type(default)):
        raise InputError(f"config field {name} expects {type(default).__name__}, got {value!r}")
    return value
