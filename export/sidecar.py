"""The engine sidecar ``<name>.engine.json``: what an engine was built from and for.

Schema (version 1). The runtime (``hmrt.runtime.backends.engine_sidecar``) re-reads this JSON on
its own (it may not import hmrt.export); keep the keys stable and documented in docs/DEPLOY.md.

==============================  ===========================================================
key                             meaning
==============================  ===========================================================
schema                          ``"hmrt-engine-sidecar/1"``
engine                          engine file name (same folder)
tensorrt_version                ``trt.__version__`` of the builder, e.g. ``"10.3.0"``
cuda_version                    CUDA runtime version ``"12.6"`` or null when unknown
gpu_name                        GPU the engine was built on, or null when unknown
compute_capability              ``"8.7"`` (major.minor) or null when unknown
precision                       ``fp32|fp16|int8``
strongly_typed                  network built strongly typed (TRT 11 always; FP16/Q/DQ graphs)
builder_flags                   BuilderFlag names set, e.g. ``["FP16", "OBEY_PRECISION_CONSTRAINTS"]``
fp32_layers                     number of layers pinned to FP32 (weakly typed FP16/INT8 builds)
profiles                        ``[{"input": "image", "min": [1,3,224,224], "opt": [...], "max": [...]}]``
onnx_path                       ONNX file name, relative to the engine's folder
onnx_sha256                     SHA-256 of that ONNX file
opset                           ONNX opset of the graph
metadata                        the ONNX ``hmrt.*`` metadata_props (model, variant, input size, ...)
hmrt_version                    hmrt version of the builder
version_compatible              built with BuilderFlag.VERSION_COMPATIBLE
hardware_compatibility_level    ``NONE|AMPERE_PLUS|SAME_COMPUTE_CAPABILITY``
dla_core                        DLA core or null
build_command                   command line that rebuilds this engine
created                         UTC build time, ISO 8601
==============================  ===========================================================
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

from hmrt.runtime.cache import file_sha256

SCHEMA = "hmrt-engine-sidecar/1"
REQUIRED_KEYS = (
    "schema",
    "engine",
    "tensorrt_version",
    "cuda_version",
    "gpu_name",
    "compute_capability",
    "precision",
    "strongly_typed",
    "builder_flags",
    "fp32_layers",
    "profiles",
    "onnx_path",
    "onnx_sha256",
    "opset",
    "metadata",
    "hmrt_version",
    "version_compatible",
    "hardware_compatibility_level",
    "dla_core",
    "build_command",
    "created",
)


def sidecar_path(engine: str | Path) -> Path:
    """``x.engine`` -> ``x.engine.json``."""
    engine = Path(engine)
    return engine.with_name(engine.name + ".json")


def make_sidecar(
    *,
    engine: str | Path,
    onnx_path: str | Path,
    tensorrt_version: str,
    precision: str,
    strongly_typed: bool,
    builder_flags: list[str],
    fp32_layers: int,
    profiles: list[dict[str, Any]],
    opset: int,
    metadata: dict[str, str],
    version_compatible: bool,
    hardware_compatibility_level: str = "NONE",
    gpu: dict[str, str | None] | None = None,
    dla_core: int | None = None,
    build_command: str = "",
) -> dict[str, Any]:
    """The sidecar dict for one engine (every key of :data:`REQUIRED_KEYS`)."""
    from hmrt import __version__

    engine, onnx_path = Path(engine), Path(onnx_path)
    gpu = gpu or {}
    try:
        rel = onnx_path.resolve().relative_to(engine.resolve().parent)
    except ValueError:
        rel = onnx_path.resolve()
    return {
        "schema": SCHEMA,
        "engine": engine.name,
        "tensorrt_version": str(tensorrt_version),
        "cuda_version": gpu.get("cuda_version"),
        "gpu_name": gpu.get("name"),
        "compute_capability": gpu.get("compute_capability"),
        "precision": precision,
        "strongly_typed": bool(strongly_typed),
        "builder_flags": list(builder_flags),
        "fp32_layers": int(fp32_layers),
        "profiles": profiles,
        "onnx_path": str(rel),
        "onnx_sha256": file_sha256(onnx_path),
        "opset": int(opset),
        "metadata": dict(metadata),
        "hmrt_version": __version__,
        "version_compatible": bool(version_compatible),
        "hardware_compatibility_level": hardware_compatibility_level,
        "dla_core": dla_core,
        "build_command": build_command,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def write_sidecar(engine: str | Path, data: dict[str, Any]) -> Path:
    """Write ``<engine>.json`` atomically."""
    from hmrt.runtime.atomic import write_text_atomic

    return write_text_atomic(sidecar_path(engine), json.dumps(data, indent=2, sort_keys=True))
