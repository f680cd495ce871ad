"""numba ``njit`` with an on-disk cache when one is writable, and one canonical argument form.

Cache: numba caches next to the source (``__pycache__``), else in ``NUMBA_CACHE_DIR`` or the
user's cache directory (``~/.cache/numba``: a read-only site-packages lands there); when none is
writable (read-only install, no home) ``cache=True`` raises at decoration time. hmrt must still
import there, so it compiles without a cache instead, and the renderer's warm-up
(:func:`hmrt.runtime.render.warmup`) keeps that compilation out of timed loops.

Argument form: numba compiles one specialisation per argument *type*, and an array's type
includes its layout and whether it is writeable. The body model's arrays are read-only, a test's
are not; without care the warm-up compiles one specialisation and the first real frame another,
inside the timed loop. :func:`kernel_input` gives every input-only array one form.
"""

from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np


def njit(parallel: bool = False, **options) -> Callable:
    """``numba.njit(cache=True, ...)`` that falls back to ``cache=False`` instead of raising."""

    def decorate(fn: Callable) -> Callable:
        try:
            return numba.njit(cache=True, parallel=parallel, **options)(fn)
        except RuntimeError:  # "cannot cache function ...: no locator available"
            return numba.njit(cache=False, parallel=parallel, **options)(fn)

    return decorate


def kernel_input(array: np.ndarray, dtype: type) -> np.ndarray:
    """``array`` as a C-contiguous, read-only ``dtype`` array (copied only when it must be).

    Pass every array a kernel only reads through this, whatever its origin (read-only body
    model, fresh array, strided view): the kernel then sees one argument type, so the warm-up
    on a tiny mesh compiles exactly the specialisation that real frames run. The view costs
    nothing and the caller's array keeps its own flags.
    """
    view = np.ascontiguousarray(array, dtype=dtype).view()
    view.flags.writeable = False
    return view
