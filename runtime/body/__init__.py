"""The body model in the runtime: npz layout, ``BodyModel`` (numpy LBS), SMPL import, CLI.

``BodyModel()`` loads the bundled open model (assets/body/hmrt_body.npz); a user's official
SMPL file is converted once with ``hmrt body import-smpl`` (see ``smpl_import``). Names are
imported lazily so that ``hmrt body --help`` does not load numpy.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "BodyModel": "hmrt.runtime.body.model",
    "default_body_path": "hmrt.runtime.body.model",
    "SMPL_JOINT_NAMES": "hmrt.runtime.body.layout",
    "SMPL_PARENTS": "hmrt.runtime.body.layout",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
