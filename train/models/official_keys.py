"""Official checkpoint key maps: renames and drops only, one small table per model.

DESIGN.md: an official checkpoint maps onto hmrt's layout by renames and drops; anything else is
a model option (e.g. DecoMR's ``uv_convention``). Each model's ``official_keys.py`` declares a
:class:`KeyMap`; ``hmrt import-checkpoint`` reads it through ``official_to_hmrt_key``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class KeyMap:
    """Prefix renames (first match wins) and dropped keys / prefixes of an official layout."""

    renames: tuple[tuple[str, str], ...]
    dropped_prefixes: tuple[str, ...] = ()
    dropped_keys: tuple[str, ...] = ()

    def to_hmrt(self, key: str) -> str | None:
        """The hmrt key for an official key, or None if the official tensor has no counterpart."""
        if key in self.dropped_keys or key.startswith(self.dropped_prefixes):
            return None
        for old, new in self.renames:
            if key.startswith(old):
                return new + key[len(old) :]
        return key

    def convert(self, state: Mapping[str, object]) -> dict[str, object]:
        """Rename an official state dict for the paper variant's ``load_state_dict``."""
        out = {}
        for key, value in state.items():
            new = self.to_hmrt(key)
            if new is not None:
                out[new] = value
        return out
