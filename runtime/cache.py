"""hmrt's cache folder and the content hash that ties a derived file to its source.

``$HMRT_CACHE`` if set, else ``$XDG_CACHE_HOME/hmrt`` or ``~/.cache/hmrt``. Nothing here is
downloaded: every file is produced locally from bundled assets on first use.
:func:`file_sha256` is the one file hash of the project: the demo's cached ONNX is named after
its weights' hash, INT8 range caches and engine sidecars record their ONNX file's hash.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def cache_dir() -> Path:
    """The cache root (not created until something is written)."""
    root = os.environ.get("HMRT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "hmrt"
    )
    return Path(root)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
