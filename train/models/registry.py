"""The model zoo's registry and its one factory, timm-style.

Every model class has the constructor ``Model(config, body=None)`` and a config dataclass
derived from :class:`~hmrt.train.models.config.ModelConfig`; each registered name has named
variants (``paper``, ``edge``) that are preset configs. :func:`build` applies keyword overrides
to a preset, :func:`build_from_config` rebuilds a model from a checkpoint's config dict.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from hmrt.runtime.errors import InputError
from hmrt.train.models.config import ModelConfig


@dataclass(frozen=True)
class ModelEntry:
    """One registered model: its class, config class, variant presets and a one-line summary."""

    name: str
    model_cls: type[nn.Module]
    config_cls: type[ModelConfig]
    variants: dict[str, Callable[[], ModelConfig]]
    summary: str = ""


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    *,
    config_cls: type[ModelConfig],
    variants: dict[str, Callable[[], ModelConfig]],
    summary: str = "",
) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator adding a model to the zoo under ``name`` with its variant presets."""

    def decorate(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _REGISTRY and _REGISTRY[name].model_cls is not cls:
            raise ValueError(f"model name {name!r} is already registered")
        _REGISTRY[name] = ModelEntry(name, cls, config_cls, dict(variants), summary)
        return cls

    return decorate


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_REGISTRY)


def get_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``, or an :class:`InputError` listing the known names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(list_models()) or "none"
        raise InputError(f"unknown model {name!r}; known models: {known}") from None


def make_config(name: str, variant: str = "paper", **overrides: Any) -> ModelConfig:
    """The preset config of ``name``/``variant`` with ``overrides`` applied and validated."""
    entry = get_entry(name)
    if variant not in entry.variants:
        raise InputError(
            f"model {name!r} has no variant {variant!r}; choose one of {', '.join(entry.variants)}"
        )
    config = entry.variants[variant]()
    return config.replace(**overrides) if overrides else config


def build(name: str, variant: str = "paper", body: Any = None, **overrides: Any) -> nn.Module:
    """Build model ``name`` (variant preset + overrides) around ``body``.

    ``body``: None (the bundled body model), a path, a ``hmrt.runtime.body.BodyModel``, or an
    ``nn.Module`` with ``forward(rotmats, betas) -> (vertices, joints)`` used as is.
    """
    entry = get_entry(name)
    return entry.model_cls(make_config(name, variant, **overrides), body=body)


def build_from_config(config: ModelConfig | dict[str, Any], body: Any = None) -> nn.Module:
    """Rebuild a model from its config (a dataclass or the dict stored in a checkpoint)."""
    if isinstance(config, dict):
        if "name" not in config:
            raise InputError("model config has no 'name'; expected a dict from config.to_dict()")
        config = get_entry(config["name"]).config_cls.from_dict(config)
    return get_entry(config.name).model_cls(config, body=body)
