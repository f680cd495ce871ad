"""hmrt's cache folder: derived files it can rebuild (the demo's ONNX and clip, ORT engines).

``$HMRT_CACHE`` if set, else ``$XDG_CACHE_HOME/hmrt`` or ``~/.cache/hmrt``. Nothing here is
downloaded: every file is produced locally from bundled assets on first use.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The cache root (not created until something is written)."""
    root = os.environ.get("HMRT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "hmrt"
    )
    return Path(root)
