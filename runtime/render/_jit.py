"""numba ``njit`` with an on-disk cache when one is writable, and without it otherwise.

numba caches next to the source (``__pycache__``), else in ``NUMBA_CACHE_DIR`` or the user's
cache directory; when none is writable (read-only install, no home) ``cache=True`` raises at
decoration time. hmrt must still import there, so it compiles without a cache instead.
"""

from __future__ import annotations

from collections.abc import Callable

import numba


def njit(parallel: bool = False, **options) -> Callable:
    """``numba.njit(cache=True, ...)`` that falls back to ``cache=False`` instead of raising."""

    def decorate(fn: Callable) -> Callable:
        try:
            return numba.njit(cache=True, parallel=parallel, **options)(fn)
        except RuntimeError:  # "cannot cache function ...: no locator available"
            return numba.njit(cache=False, parallel=parallel, **options)(fn)

    return decorate
