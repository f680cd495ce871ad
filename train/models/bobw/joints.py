"""BoBW's joint set: the 14 LSP joints, mapped onto hmrt's body (never read from SMPL files).

The paper works with the 14 LSP joints (its Table 4: 24 SMPL parts are much worse). DecoMR's
LSP-14 order is kept (seed-bobw.md §1.1). Twelve joints are the body's own skeleton joints
(its ``J_regressor`` rows); the neck is the body's ``neck``; the head top, which has no body
joint, is the template's highest vertex on the symmetry plane (index found from the body
file, not hard-coded, so an imported SMPL body gets its own). The contract's ``joints3d
(N,24,3)`` still comes from the body's regressor on the final mesh; the 14 LSP joints are the
``pose_joints`` output.
"""

from __future__ import annotations

import numpy as np

LSP14_NAMES: tuple[str, ...] = (
    "right_ankle",
    "right_knee",
    "right_hip",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_wrist",
    "right_elbow",
    "right_shoulder",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "neck",
    "head_top",
)
"""LSP-14 joints in DecoMR's order."""

LSP14_FLIP: tuple[int, ...] = (5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6, 12, 13)
"""Left/right permutation of :data:`LSP14_NAMES` (DecoMR's flip permutation)."""

HEAD_TOP = "head_top"


def head_top_vertex(body) -> int:
    """Index of the template's highest vertex (body frame: Y up) among those on the symmetry
    plane (``flip_vertex[i] == i``; all vertices when the body has no flip map)."""
    v = np.asarray(body.v_template, dtype=np.float64)
    flip = getattr(body, "flip_vertex", None)
    candidates = np.arange(len(v))
    if flip is not None:
        on_plane = np.flatnonzero(np.asarray(flip) == candidates)
        if on_plane.size:
            candidates = on_plane
    return int(candidates[np.argmax(v[candidates, 1])])


def lsp14_regressor(body) -> np.ndarray:
    """``(14, V)`` float64 regressor of the LSP-14 joints from the body's vertices.

    Rows are the body's ``J_regressor`` rows of the same-named joints, and a one-hot row on
    :func:`head_top_vertex` for the head top. Raises ``InputError`` when the body lacks one of
    the names (an SMPL-layout body has them all).
    """
    from hmrt.runtime.errors import InputError

    names = [str(n) for n in body.joint_names]
    reg = np.asarray(body.J_regressor, dtype=np.float64)
    out = np.zeros((len(LSP14_NAMES), reg.shape[1]), dtype=np.float64)
    for k, name in enumerate(LSP14_NAMES):
        if name == HEAD_TOP:
            out[k, head_top_vertex(body)] = 1.0
        elif name in names:
            out[k] = reg[names.index(name)]
        else:
            raise InputError(
                f"{getattr(body, 'path', 'body')}: no joint named {name!r} for BoBW's LSP-14 "
                f"set (the body's joints: {', '.join(names)})"
            )
    return out
