"""Bundled data: the open body model, default weights, the demo clip (package data, no code)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent


def asset_path(relative: str) -> Path:
    """Absolute path of a bundled asset, e.g. ``asset_path("body/hmrt_body.npz")``."""
    return ROOT / relative
