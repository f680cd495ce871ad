"""hmrt.runtime: the lean inference runtime (numpy, OpenCV, numba; ORT/TensorRT optional).

Never imports torch, nor hmrt.train / hmrt.calib / hmrt.export: a robotics app installs hmrt
without the train extra and this package must work there. ``Reconstructor`` and ``Result`` are
imported lazily on first use, so ``import hmrt.runtime`` stays light (no OpenCV, no ORT).

    from hmrt.runtime import Reconstructor
    rec = Reconstructor("model.onnx", smoothing="default")
    result = rec(frame_bgr)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hmrt.runtime.reconstructor import Reconstructor
    from hmrt.runtime.result import Result

__all__ = ["Reconstructor", "Result"]

_LAZY = {"Reconstructor": "hmrt.runtime.reconstructor", "Result": "hmrt.runtime.result"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hmrt.runtime' has no attribute {name!r}")
