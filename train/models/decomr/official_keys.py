"""Map the official DecoMR checkpoint (``torch.load(f)`` -> ``{"CNet": sd, "LNet": sd, ...}``)
onto this implementation.

The paper variant has the official layer structure and names below ``cnet`` / ``lnet``, so
conversion is two prefix renames and one drop: ``CNet.`` -> ``cnet.``, ``LNet.`` -> ``lnet.``,
and the official ResNet's classifier ``CNet.resnet.fc.*`` (built but never used) is dropped.
``LNet.ref_map`` is not in the official state dict (a plain attribute) and hmrt rebuilds it from
the body file, as it does the sampler's tables and the joint regressor.

Caveats for an importer (docs/models/decomr.md): official weights predict SMPL's BF chart with
``v`` growing downward (hmrt charts: ``v`` toward the head), a location map in the official
training frame, and 6,890 vertices: parity needs a real SMPL file imported with
``hmrt body import-smpl`` whose continuous chart is the BF map, and the V channel flipped.
"""

from __future__ import annotations

from collections.abc import Mapping

RENAMES = (
    ("CNet.", "cnet."),
    ("LNet.", "lnet."),
)

DROPPED_PREFIXES = ("CNet.resnet.fc.",)


def flatten_official(checkpoint: Mapping[str, Mapping[str, object]]) -> dict[str, object]:
    """``{"CNet": sd, "LNet": sd, ...}`` -> ``{"CNet.<key>": v, "LNet.<key>": v}`` (the rest,
    optimizer state and counters, is not part of the model)."""
    return {
        f"{part}.{key}": value
        for part in ("CNet", "LNet")
        for key, value in checkpoint[part].items()
    }


def official_to_hmrt_key(key: str) -> str | None:
    """The hmrt key for a flattened official key, or None if it has no counterpart."""
    if key.startswith(DROPPED_PREFIXES):
        return None
    for old, new in RENAMES:
        if key.startswith(old):
            return new + key[len(old) :]
    return key


def convert_official_state_dict(state: Mapping[str, object]) -> dict[str, object]:
    """Rename a flattened official DecoMR state dict for ``DecoMR.load_state_dict`` (paper)."""
    out = {}
    for key, value in state.items():
        new = official_to_hmrt_key(key)
        if new is not None:
            out[new] = value
    return out
