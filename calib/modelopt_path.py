"""Optional INT8 path through NVIDIA ModelOpt (``nvidia-modelopt[onnx]``), when it is installed.

ModelOpt pins its own onnx / onnxruntime(-gpu) and patches ORT internals, so it lives in a
separate virtual environment (docs/PRECISION.md); hmrt never installs it. Differences from the
default path (shared/research/tensorrt.md §5.1): the output is forced to opset >= 19, so it builds
on TensorRT 10/11 only (strongly typed), not 8.6; the non-quantized part can be cast to FP16
(``high_precision_dtype``: hmrt asks for fp32 so the FP32 islands stay FP32). The same plan as
the default path is passed as ``nodes_to_exclude`` (islands, final heads, float groups), and the
same calibration crops (:mod:`hmrt.calib.data`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from hmrt.runtime.errors import MissingDependencyError

INSTALL_HINT = (
    "python -m venv .venv-modelopt && .venv-modelopt/bin/pip install 'nvidia-modelopt[onnx]' "
    "&& .venv-modelopt/bin/pip install --no-deps -e . (see docs/PRECISION.md)"
)


def modelopt_available() -> bool:
    """Is ``modelopt.onnx.quantization`` importable here?"""
    import importlib.util

    try:
        return importlib.util.find_spec("modelopt.onnx.quantization") is not None
    except ModuleNotFoundError:
        return False


def quantize_with_modelopt(
    fp32_path: str | os.PathLike,
    out_path: str | os.PathLike,
    images: np.ndarray,
    nodes_to_exclude: list[str],
    method: str = "entropy",
) -> Path:
    """ModelOpt INT8 Q/DQ of ``fp32_path`` calibrated on ``images``; writes ``out_path``.

    ModelOpt writes the file itself (not atomically): it writes to a temporary sibling that is
    renamed on success.
    """
    if not modelopt_available():
        raise MissingDependencyError("nvidia-modelopt", "the ModelOpt INT8 path", INSTALL_HINT)
    from modelopt.onnx.quantization import quantize

    from hmrt.runtime.atomic import atomic_path

    # ModelOpt reads node names as regular expressions: escape hmrt's literal names.
    patterns = [f"^{re.escape(n)}$" for n in nodes_to_exclude]
    with atomic_path(Path(out_path)) as tmp:
        quantize(
            onnx_path=str(fp32_path),
            quantize_mode="int8",
            calibration_data=np.ascontiguousarray(images, np.float32),
            calibration_method="entropy" if method == "entropy" else "max",
            calibration_eps=["cpu"],
            nodes_to_exclude=patterns,
            high_precision_dtype="fp32",
            output_path=str(tmp),
        )
    return Path(out_path)
