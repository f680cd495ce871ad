"""Read and check a TensorRT engine's sidecar JSON before the engine is deserialised.

A TensorRT plan only runs on the TensorRT version and GPU it was built for; a wrong one fails
deep inside ``deserialize_cuda_engine`` with "Version tag does not match" or "expecting compute
7.5 got compute 7.0", or worse, loads and misbehaves. ``<name>.engine.json`` (written next to
the engine by ``export/build_engine.py``) records what the engine was built with; this module
compares it with the running machine and raises EngineMismatchError with the exact command that
rebuilds the engine here. It re-reads the JSON itself: the runtime never imports hmrt.export.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hmrt.runtime.cache import file_sha256
from hmrt.runtime.errors import EngineMismatchError, ModelLoadError


def sidecar_path(engine: str | Path) -> Path:
    """``model.engine`` -> ``model.engine.json``."""
    engine = Path(engine)
    return engine.with_name(engine.name + ".json")


def _version(text: object) -> tuple[int, ...]:
    nums = re.findall(r"\d+", str(text))
    return tuple(int(n) for n in nums[:3])


def _capability(value: object) -> tuple[int, int] | None:
    """``"8.6"``, ``[8, 6]``, ``"sm_86"`` or ``86`` -> ``(8, 6)``."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)) and len(value) >= 2:
        return int(value[0]), int(value[1])
    text = str(value)
    m = re.fullmatch(r"\s*(?:sm_?)?(\d+)[._](\d+)\s*", text)
    if m:
        return int(m.group(1)), int(m.group(2))
    m = re.fullmatch(r"\s*(?:sm_?)?(\d)(\d)\s*", text)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _first(raw: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if raw.get(k) is not None:
            return raw[k]
    return None


@dataclass
class EngineSidecar:
    """The fields of ``<name>.engine.json`` that the runtime relies on."""

    path: Path
    engine: Path
    tensorrt_version: str
    gpu_name: str | None
    compute_capability: tuple[int, int] | None
    precision: str
    version_compatible: bool
    hardware_compatibility: str
    onnx_path: Path | None
    onnx_sha256: str | None
    metadata: dict[str, str]
    build_command: str | None
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    def rebuild_command(self) -> str:
        """The command that rebuilds this engine on the current machine."""
        if self.build_command:
            return self.build_command
        onnx = str(self.onnx_path) if self.onnx_path else "MODEL.onnx"
        cmd = f"python export/build_engine.py --onnx {onnx} --output {self.engine}"
        if self.precision in ("fp16", "int8"):
            cmd += f" --{self.precision}"
        return cmd


def read_sidecar(engine: str | Path) -> EngineSidecar:
    """Parse ``<engine>.json``; raise ModelLoadError if it is missing or malformed."""
    engine = Path(engine)
    path = sidecar_path(engine)
    if not path.is_file():
        raise ModelLoadError(
            f"{engine}: its sidecar {path.name} is missing, so hmrt cannot check that the "
            "engine fits this GPU and TensorRT; rebuild it with `python export/build_engine.py`"
            " (which writes both files) and keep them together"
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{path}: not valid JSON ({exc}); rebuild the engine") from exc
    if not isinstance(raw, dict):
        raise ModelLoadError(f"{path}: expected a JSON object; rebuild the engine")
    trt_version = _first(raw, "tensorrt_version", "trt_version")
    if trt_version is None:
        raise ModelLoadError(f"{path}: no tensorrt_version recorded; rebuild the engine")
    gpu = raw.get("gpu") if isinstance(raw.get("gpu"), dict) else {}
    onnx = _first(raw, "onnx_path", "onnx")
    onnx_path = None
    if isinstance(onnx, str) and onnx:
        onnx_path = Path(onnx)
        if not onnx_path.is_absolute():
            onnx_path = (engine.parent / onnx_path).resolve()
    meta = _first(raw, "metadata", "onnx_metadata", "hmrt_metadata") or {}
    hwc = _first(raw, "hardware_compatibility_level", "hardware_compatibility") or "NONE"
    return EngineSidecar(
        path=path,
        engine=engine,
        tensorrt_version=str(trt_version),
        gpu_name=_first(raw, "gpu_name") or gpu.get("name"),
        compute_capability=_capability(
            _first(raw, "compute_capability") or gpu.get("compute_capability")
        ),
        precision=str(raw.get("precision", "fp32")),
        version_compatible=bool(raw.get("version_compatible", False)),
        hardware_compatibility=str(hwc).split(".")[-1].upper(),
        onnx_path=onnx_path,
        onnx_sha256=_first(raw, "onnx_sha256"),
        metadata={str(k): str(v) for k, v in dict(meta).items()},
        build_command=_first(raw, "build_command", "rebuild_command"),
        raw=raw,
    )


def check_sidecar(
    sidecar: EngineSidecar,
    tensorrt_version: str,
    gpu_name: str | None = None,
    compute_capability: tuple[int, int] | None = None,
    lean_runtime: bool = False,
    check_onnx: bool = True,
) -> list[str]:
    """Refuse an engine that cannot run here; return warnings for what merely may be slower.

    Checks, in order: the TensorRT version (exact major.minor.patch, or for version-compatible
    engines a runtime at least as new within the same major), that a lean/dispatch runtime
    only gets version-compatible engines, the GPU compute capability (against the engine's
    hardware-compatibility level) when ``compute_capability`` is given, and (``check_onnx``)
    the ONNX hash when the sidecar names an ONNX file that still exists. Raises
    EngineMismatchError.
    """
    fix = f"rebuild it on this machine: {sidecar.rebuild_command()}"
    name = sidecar.engine.name
    built, here = _version(sidecar.tensorrt_version), _version(tensorrt_version)
    if sidecar.version_compatible:
        if here[:1] != built[:1] or here < built:
            raise EngineMismatchError(
                f"{name} is a version-compatible engine from TensorRT {sidecar.tensorrt_version}"
                f", which TensorRT {tensorrt_version} cannot run (needs the same major version, "
                f"at least as new); {fix}"
            )
    elif here != built:
        raise EngineMismatchError(
            f"{name} was built with TensorRT {sidecar.tensorrt_version} but this machine has "
            f"TensorRT {tensorrt_version} (engines only run on the version that built them); "
            f"{fix}"
        )
    if lean_runtime and not sidecar.version_compatible:
        raise EngineMismatchError(
            f"{name} is not version-compatible, and only the TensorRT lean/dispatch runtime is "
            "installed (it runs version-compatible engines only); install the full `tensorrt` "
            f"package, or {fix} --version-compatible"
        )
    warnings: list[str] = []
    cc = compute_capability
    if cc is not None and sidecar.compute_capability is not None:
        want = sidecar.compute_capability
        level = sidecar.hardware_compatibility
        gpu_desc = f"{gpu_name or 'this GPU'} (compute {cc[0]}.{cc[1]})"
        built_desc = f"{sidecar.gpu_name or 'another GPU'} (compute {want[0]}.{want[1]})"
        if level in ("AMPERE_PLUS",):
            if cc < (8, 0):
                raise EngineMismatchError(
                    f"{name} was built for Ampere or newer GPUs, but this is {gpu_desc}; {fix}"
                )
        elif cc != want:
            raise EngineMismatchError(f"{name} was built for {built_desc}, not {gpu_desc}; {fix}")
        elif (
            level == "NONE"
            and gpu_name
            and sidecar.gpu_name
            and gpu_name.strip().lower() != sidecar.gpu_name.strip().lower()
        ):
            warnings.append(
                f"{name} was built on {sidecar.gpu_name}, running on {gpu_name} (same compute "
                "capability: it runs, possibly slower); rebuild for best speed"
            )
    onnx = sidecar.onnx_path
    if check_onnx and sidecar.onnx_sha256 and onnx is not None and onnx.is_file():
        actual = file_sha256(sidecar.onnx_path)
        if actual.lower() != str(sidecar.onnx_sha256).lower():
            raise EngineMismatchError(
                f"{name} is stale: {sidecar.onnx_path.name} changed since the engine was built "
                f"(sha256 {actual[:12]}... != {str(sidecar.onnx_sha256)[:12]}...); {fix}"
            )
    return warnings
