"""Official-layout state dicts built from a committed manifest, for the import-checkpoint tests.

The released weights are not available to tests (users download them): each model's manifest
(names, shapes, dtypes read from the official code) gives the layout, filled with random values
scaled like trained weights, or with one stored number per tensor for a tiny file.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from hmrt.cli import main
from hmrt.export.import_checkpoint import load_manifest

# (key, leaf, shape, generator) -> a tensor, or None for the default rule
ValueRule = Callable[[str, str, tuple[int, ...], torch.Generator], torch.Tensor | None]


def manifest_rows(model: str) -> list[tuple[str, tuple[int, ...], str]]:
    """``(key, shape, dtype)`` of the official state dict of ``model``."""
    return [(k, tuple(s), d) for k, s, d in load_manifest(model)["state_dict"]]


def official_state(model: str, seed: int = 0, rule: ValueRule | None = None) -> dict:
    """Random values in the official layout: fan-in scaled weights, norm scales and variances
    near 1, small biases; ``rule`` overrides the value of model-specific tensors."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape, dtype in manifest_rows(model):
        leaf = key.rsplit(".", 1)[-1]
        value = None if rule is None or dtype == "int64" else rule(key, leaf, shape, g)
        if value is not None:
            pass
        elif dtype == "int64":
            value = torch.randint(0, 1000, shape, generator=g)
        elif leaf == "weight" and len(shape) >= 2:
            value = torch.randn(shape, generator=g) / math.sqrt(math.prod(shape[1:]))
        elif leaf in ("weight", "running_var"):
            value = 1.0 + 0.1 * torch.rand(shape, generator=g)
        else:  # biases, running means
            value = 0.05 * torch.randn(shape, generator=g)
        state[key] = value
    return state


def cheap_state(model: str) -> dict:
    """The official layout with one stored number per tensor (stride-0 views): a tiny file."""
    one = {"float32": torch.zeros(1), "int64": torch.zeros(1, dtype=torch.int64)}
    return {k: one[d].expand(s) if s else one[d][0] for k, s, d in manifest_rows(model)}


def run_import(capsys, model: str, *args: str) -> tuple[int, str, str]:
    """``hmrt import-checkpoint --model MODEL ARGS`` -> (exit code, stdout, stderr)."""
    code = main(["import-checkpoint", "--model", model, *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err
