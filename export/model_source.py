"""Which torch model an export starts from: a checkpoint, the bundled weights, or random init.

A variant without bundled weights needs ``--checkpoint`` or an explicit ``--random-init``: an
export must never silently ship an untrained model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from hmrt.runtime.errors import InputError


@dataclass
class ModelSource:
    """The loaded model and where its weights came from (``checkpoint|bundled|random-init``)."""

    model: nn.Module
    name: str
    variant: str
    weights: str
    weights_path: Path | None


def bundled_weights_path(model: str, variant: str) -> Path:
    """``assets/weights/<model>_<variant>.pt`` (may not exist yet)."""
    from hmrt.assets import asset_path

    return asset_path(f"weights/{model}_{variant}.pt")


def load_model(
    model: str | None = None,
    variant: str = "edge",
    checkpoint: str | Path | None = None,
    random_init: bool = False,
    seed: int = 0,
    body: object = None,
) -> ModelSource:
    """Build the eval-mode model to export; raise InputError when no weights are available.

    ``body``: None for the bundled body model, else what ``hmrt.train.models.build`` accepts.
    """
    import torch

    from hmrt.train.checkpoint import load_checkpoint, model_spec

    if checkpoint is not None:
        if random_init:
            raise InputError("--checkpoint and --random-init exclude each other; pick one")
        net = load_checkpoint(checkpoint, device="cpu", body=_body_layer(body))
        spec = model_spec(net)
        return ModelSource(net, spec["name"], spec["variant"], "checkpoint", Path(checkpoint))
    if not model:
        raise InputError("say what to export: --checkpoint PATH, or --model NAME [--variant V]")
    bundled = bundled_weights_path(model, variant)
    if random_init:
        from hmrt.train.models import build

        torch.manual_seed(seed)
        net = build(model, variant, body=body).eval()
        return ModelSource(net, model, variant, "random-init", None)
    if not bundled.is_file():
        raise InputError(
            f"{model}/{variant} has no bundled weights ({bundled} is missing); pass "
            "--checkpoint PATH, or --random-init for an untrained model (speed tests only)"
        )
    net = load_checkpoint(bundled, device="cpu", body=_body_layer(body))
    return ModelSource(net, model, variant, "bundled", bundled)


def _body_layer(body: object):
    """``load_checkpoint`` takes a body *layer*; build one from a path when given a path."""
    if body is None or isinstance(body, nn.Module):
        return body
    from hmrt.train.body import BodyLayer

    return BodyLayer(body)
