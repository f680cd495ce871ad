"""Test bodies for the data-engine tests: the tiny tube body with left/right-consistent parts.

``tests/body_helpers.py`` gives a ~500-vertex T-posed body with random DensePose parts; here each
face gets the part of the bone it belongs to (DensePose numbering, left/right correct), so a
mirrored rendering must show the swapped parts, and its joint regressor and shape basis are made
mirror-symmetric. Rendering it costs well under a millisecond.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from body_helpers import synthetic_body_arrays

from hmrt.assets import asset_path

# Dominant joint of a face -> DensePose part (head: split by the sign of x below).
_JOINT_PART = {
    0: 2, 3: 2, 6: 2, 9: 2, 13: 2, 14: 2, 1: 8, 2: 7, 4: 12, 5: 11, 7: 5, 8: 6, 10: 5, 11: 6,
    16: 15, 17: 16, 18: 19, 19: 20, 20: 4, 21: 3, 22: 4, 23: 3,
}  # fmt: skip


def parts_body_arrays(seed: int = 0) -> dict:
    """Arrays of the tiny body with bone-consistent ``dp_I`` (see the module docstring)."""
    arrays = synthetic_body_arrays(seed)
    faces, weights, verts = arrays["f"], arrays["weights"], arrays["v_template"]
    dominant = weights[faces].sum(axis=1).argmax(axis=1)
    centre_x = verts[faces].mean(axis=1)[:, 0]
    parts = np.array(
        [
            _JOINT_PART.get(int(j), 24 if x > 0 else 23)
            for j, x in zip(dominant.tolist(), centre_x.tolist())
        ],
        np.uint8,
    )
    arrays["dp_I"] = parts
    # Make the joint regressor and shape basis mirror-symmetric, so that posed joints of a
    # mirrored pose are exactly the mirrored joints (as for the real, symmetric body).
    fv, fj = arrays["flip_vertex"], arrays["flip_joint"]
    reg = arrays["J_regressor"]
    arrays["J_regressor"] = 0.5 * (reg + reg[fj][:, fv])
    sd = arrays["shapedirs"]
    arrays["shapedirs"] = 0.5 * (sd + sd[fv] * np.array([-1.0, 1.0, 1.0])[:, None])
    return arrays


def write_parts_body(path: str | Path) -> Path:
    """Save :func:`parts_body_arrays` as an npz and return its path."""
    path = Path(path)
    np.savez(path, **parts_body_arrays())
    return path


def real_body_path() -> Path | None:
    """The bundled body model if it is present in this checkout."""
    path = asset_path("body/hmrt_body.npz")
    return path if path.is_file() else None
