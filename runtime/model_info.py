"""What the runtime needs to know about a model, read from its ONNX metadata or engine sidecar.

hmrt models are self-describing (DESIGN.md, ONNX contract): the ``hmrt.*`` metadata_props
carry the input size, the normalisation, the crop focal and provenance, so the runtime needs no
config file. This module parses those strings once into a typed :class:`ModelInfo`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hmrt.runtime.errors import ModelLoadError

OUTPUTS = ("vertices", "joints3d", "joints2d", "cam", "rotmats", "betas")
"""Output names of the ONNX contract; the first four are required."""
REQUIRED_OUTPUTS = OUTPUTS[:4]
REQUIRED_KEYS = ("hmrt.input_size", "hmrt.mean", "hmrt.std")


@dataclass(frozen=True)
class ModelInfo:
    """Parsed ``hmrt.*`` metadata of a model file."""

    path: str
    input_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop_focal: float = 5000.0
    model: str = "unknown"
    variant: str = "unknown"
    precision: str = "fp32"
    body_hash: str = ""
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def res(self) -> int:
        """Side of the square model input in pixels."""
        return self.input_size[0]

    @property
    def name(self) -> str:
        """``model-variant-precision``, e.g. ``danet-edge-fp32``."""
        return f"{self.model}-{self.variant}-{self.precision}"


def _floats(path: str, key: str, text: str, count: int) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != count:
        raise ModelLoadError(
            f"{path}: metadata {key}={text!r} is not {count} comma-separated numbers; "
            "re-export the model with `hmrt export`"
        )
    return values


def parse_metadata(path: str, meta: dict[str, str]) -> ModelInfo:
    """Build a :class:`ModelInfo` from ``hmrt.*`` metadata, or raise ModelLoadError naming the fix."""
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise ModelLoadError(
            f"{path} is not an hmrt model: metadata {', '.join(missing)} missing; "
            "export it with `hmrt export` (or add the hmrt.* metadata_props of docs/DEVELOPING.md)"
        )
    size = tuple(int(v) for v in _floats(path, "hmrt.input_size", meta["hmrt.input_size"], 2))
    if size[0] != size[1] or size[0] < 16:
        raise ModelLoadError(
            f"{path}: hmrt.input_size={meta['hmrt.input_size']!r} must be a square crop "
            "like '224,224'; re-export the model"
        )
    mean = _floats(path, "hmrt.mean", meta["hmrt.mean"], 3)
    std = _floats(path, "hmrt.std", meta["hmrt.std"], 3)
    if min(std) <= 0:
        raise ModelLoadError(f"{path}: hmrt.std={meta['hmrt.std']!r} must be positive")
    focal = _floats(path, "hmrt.crop_focal", meta.get("hmrt.crop_focal", "5000"), 1)[0]
    return ModelInfo(
        path=str(path),
        input_size=(size[0], size[1]),
        mean=mean,  # type: ignore[arg-type]
        std=std,  # type: ignore[arg-type]
        crop_focal=focal,
        model=meta.get("hmrt.model", "unknown"),
        variant=meta.get("hmrt.variant", "unknown"),
        precision=meta.get("hmrt.precision", "fp32"),
        body_hash=meta.get("hmrt.body_hash", ""),
        metadata=dict(meta),
    )


def check_outputs(path: str, names: list[str]) -> None:
    """Raise ModelLoadError if a model lacks the contract's required outputs."""
    missing = [n for n in REQUIRED_OUTPUTS if n not in names]
    if missing:
        raise ModelLoadError(
            f"{path} lacks the output(s) {', '.join(missing)} of the hmrt ONNX contract "
            f"(has {', '.join(names) or 'none'}); re-export it with `hmrt export`"
        )
