"""Parse and validate camera intrinsics given by a user (``--intrinsics``, ``intrinsics=``).

Kept apart from :mod:`hmrt.runtime.camera` (pure numpy maths, no errors) so that the one place
that turns user input into ``K`` also owns the one-line error for bad input: a focal length
that is zero or negative (fx or fy) makes every depth ``f / s`` divide by zero or flip sign,
and a value that is not four numbers must be echoed back as typed, not as ``None``.
"""

from __future__ import annotations

import numpy as np

from hmrt.runtime.errors import InputError

USAGE = (
    "intrinsics must be fx,fy,cx,cy in pixels (fx, fy > 0) or a 3x3 matrix "
    "[[fx,0,cx],[0,fy,cy],[0,0,1]]"
)


def _as_matrix(value: object) -> np.ndarray | None:
    """``value`` as a float (3, 3) K, or None when it is not 4 numbers or a 3x3 matrix."""
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
        try:
            value = [float(p) for p in parts]
        except ValueError:
            return None
    try:
        k = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if k.shape == (4,):
        fx, fy, cx, cy = k
        return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    return k if k.shape == (3, 3) else None


def parse_intrinsics(value: object) -> np.ndarray | None:
    """``None``, ``(fx, fy, cx, cy)``, ``"fx,fy,cx,cy"`` or a 3x3 matrix -> K (3, 3) or None.

    Raises InputError echoing ``value`` as given when it is not four numbers / a 3x3 matrix,
    has a non-finite entry, a focal ``fx`` or ``fy`` <= 0, or a last row other than (0, 0, 1).
    """
    if value is None:
        return None
    shown = value.tolist() if isinstance(value, np.ndarray) else value  # echoed as given
    k = _as_matrix(value)
    if k is None:
        raise InputError(f"{USAGE}; got {shown!r}")
    if not np.all(np.isfinite(k)):
        raise InputError(f"{USAGE}; got {shown!r}, which has a non-finite value")
    if k[0, 0] <= 0 or k[1, 1] <= 0:
        raise InputError(
            f"{USAGE}; got {shown!r}: the focal lengths must be positive "
            f"(fx={k[0, 0]:g}, fy={k[1, 1]:g})"
        )
    if not np.allclose(k[2], (0.0, 0.0, 1.0)):
        raise InputError(f"{USAGE}; got {shown!r}: the last row must be 0,0,1")
    return k
