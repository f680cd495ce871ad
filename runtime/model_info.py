"""What the runtime needs to know about a model, read from its ONNX metadata or engine sidecar.

hmrt models are self-describing (DESIGN.md, ONNX contract): the ``hmrt.*`` metadata_props
carry the input size, the normalisation, the crop focal and provenance, so the runtime needs no
config file. This module parses those strings once into a typed :class:`ModelInfo`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hmrt.runtime.errors import ModelLoadError

OUTPUTS = ("vertices", "joints3d", "joints2d", "cam", "rotmats", "betas", "pose_joints")
"""Output names of the ONNX contract; the first four are required, the others are there where
the method has them (``pose_joints``: a pose network's own joints, e.g. HEMlets)."""
REQUIRED_OUTPUTS = OUTPUTS[:4]
POSE_JOINTS_UNITS = "crop_px,crop_px,m_root_relative"
"""Units of the optional ``pose_joints (N, P, 3)`` output (metadata ``hmrt.pose_joints_units``):
x, y in crop pixels (like ``joints2d``: ``[0, S]`` over the S-pixel crop), z in metres relative
to the root joint's depth (like ``joints3d``). The joint set is named by ``hmrt.pose_joints``
(e.g. ``hemlets18``) and its joints, in output order, by ``hmrt.pose_joint_names``."""
REQUIRED_KEYS = ("hmrt.input_size", "hmrt.mean", "hmrt.std")
INPUT = "image"
"""The one input of the contract, ``[N, 3, S, S]`` (S = ``hmrt.input_size``)."""

Dim = int | str
OUTPUT_SHAPES: dict[str, tuple[tuple[Dim, ...], ...]] = {
    "vertices": (("N", "V", 3),),
    "joints3d": (("N", "J", 3),),
    "joints2d": (("N", "J", 2),),
    "cam": (("N", 3),),
    "rotmats": (("N", 24, 3, 3),),
    "betas": (("N", 10),),
    "pose_joints": (("N", "P", 3),),
    # Optional per-person evidence score (added to the contract by the detection work).
    "person_score": (("N",), ("N", 1)),
}
"""Allowed shapes of each contract output: ints must match exactly, letters name a dimension
that may be dynamic but must agree wherever it is static (``N`` with the input's batch, ``J``
between ``joints3d`` and ``joints2d``; ``P``, the pose joints, is its own). Several entries: any
one of them."""


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
    pose_joint_set: str = ""
    pose_joint_names: tuple[str, ...] = ()
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
    units = meta.get("hmrt.pose_joints_units", POSE_JOINTS_UNITS)
    if units != POSE_JOINTS_UNITS:
        # Another convention would be mapped to the full image wrongly: refuse, never guess.
        raise ModelLoadError(
            f"{path}: metadata hmrt.pose_joints_units={units!r}, but this hmrt reads pose "
            f"joints as {POSE_JOINTS_UNITS!r}; re-export the model with this hmrt's `hmrt export`"
        )
    names = tuple(n for n in meta.get("hmrt.pose_joint_names", "").split(",") if n)
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
        pose_joint_set=meta.get("hmrt.pose_joints", ""),
        pose_joint_names=names,
        metadata=dict(meta),
    )


def check_pose_joints(path: str, info: ModelInfo, shape: Sequence[Any] | None) -> None:
    """Raise ModelLoadError if the ``pose_joints`` output's joint count (``P``, when static)
    differs from the joint names in the metadata (the runtime labels joints by those names).

    ``shape``: the output's reported shape, None when the model has no ``pose_joints``.
    """
    dims = static_shape(shape)
    if not dims or len(dims) != 3 or dims[1] is None or not info.pose_joint_names:
        return
    if dims[1] != len(info.pose_joint_names):
        raise ModelLoadError(
            f"{path}: output pose_joints has {dims[1]} joints but metadata hmrt.pose_joint_names "
            f"names {len(info.pose_joint_names)}; re-export it with `hmrt export`"
        )


def check_outputs(path: str, names: list[str]) -> None:
    """Raise ModelLoadError if a model lacks the contract's required outputs."""
    missing = [n for n in REQUIRED_OUTPUTS if n not in names]
    if missing:
        raise ModelLoadError(
            f"{path} lacks the output(s) {', '.join(missing)} of the hmrt ONNX contract "
            f"(has {', '.join(names) or 'none'}); re-export it with `hmrt export`"
        )


def static_shape(shape: Sequence[Any] | None) -> tuple[int | None, ...] | None:
    """A backend's reported shape with every dynamic dimension as None.

    ONNX Runtime reports symbols (``'N'``) or None, TensorRT -1, ONNX protos 0 or a
    ``dim_param``; all mean "decided at run time". None (unknown rank) stays None.
    """
    if shape is None:
        return None
    return tuple(d if isinstance(d, int) and not isinstance(d, bool) and d > 0 else None
                 for d in shape)  # fmt: skip


def _fmt(shape: Sequence[object]) -> str:
    return "[" + ",".join("?" if d is None else str(d) for d in shape) + "]"


def _match(
    shape: tuple[int | None, ...], want: tuple[Dim, ...], symbols: dict[str, int]
) -> dict[str, int] | None:
    """The symbol bindings under which ``shape`` fits ``want``, or None if it does not fit."""
    if len(shape) != len(want):
        return None
    bound = dict(symbols)
    for got, expected in zip(shape, want):
        if got is None:
            continue  # dynamic: decided at run time, accepted here
        if isinstance(expected, int):
            if got != expected:
                return None
        elif bound.setdefault(expected, got) != got:
            return None
    return bound


def check_output_shapes(
    path: str,
    shapes: Mapping[str, Sequence[Any] | None],
    batch: int | None = None,
    unknown_rank_ok: bool = True,
) -> None:
    """Raise ModelLoadError naming the output and the shape the contract needs.

    ``shapes``: output name -> reported shape (dynamic dims as None, -1, 0 or a string).
    Outputs not in :data:`OUTPUT_SHAPES` are ignored; so are shapes of unknown rank (None, and
    ``[]`` when ``unknown_rank_ok``: ONNX Runtime reports both for shapes it cannot infer),
    which the runtime checks on the first inference instead (:func:`check_output_arrays`).
    """
    symbols: dict[str, int] = {} if batch is None else {"N": batch}
    for name, alternatives in OUTPUT_SHAPES.items():
        if name not in shapes:
            continue
        shape = static_shape(shapes[name])
        if shape is None or (unknown_rank_ok and len(shape) == 0):
            continue
        for want in alternatives:
            bound = _match(shape, want, symbols)
            if bound is not None:
                symbols = bound
                break
        else:
            need = " or ".join(_fmt(w) for w in alternatives)
            used = {d for want in alternatives for d in want if isinstance(d, str)}
            known = ", ".join(f"{k}={v}" for k, v in symbols.items() if k in used)
            raise ModelLoadError(
                f"{path}: output {name} has shape {_fmt(shape)}, but the hmrt ONNX contract "
                f"needs {need}{f' (with {known})' if known else ''}; this file was not made by "
                "`hmrt export` or was edited: re-export it with `hmrt export`"
            )


def check_output_arrays(path: str, outputs: Mapping[str, Any], batch: int) -> None:
    """Check the arrays of a real inference against the contract (catches undeclared shapes)."""
    check_output_shapes(
        path, {k: getattr(v, "shape", None) for k, v in outputs.items()}, batch,
        unknown_rank_ok=False,
    )  # fmt: skip


def check_contract(
    path: str,
    inputs: Mapping[str, Sequence[Any] | None],
    outputs: Mapping[str, Sequence[Any] | None],
    metadata: Mapping[str, str],
) -> ModelInfo:
    """Check a model's I/O and metadata against the hmrt ONNX contract; return its info.

    ``inputs``/``outputs``: name -> reported shape (as for :func:`check_output_shapes`). One
    input ``image`` ``[N, 3, S, S]`` (S from ``hmrt.input_size`` when static), the required
    outputs with contract shapes, and the ``hmrt.*`` metadata. Shared by the backends at load
    time and by ``hmrt calibrate`` / ``hmrt build-engine`` before they start work, so a file
    the runtime would refuse is refused up front with the same message.
    """
    names = list(inputs)
    if names != [INPUT]:
        raise ModelLoadError(
            f"{path}: expected one input named 'image', found {names}; this is not an hmrt "
            "model: re-export it with `hmrt export`"
        )
    check_outputs(path, list(outputs))
    info = parse_metadata(path, dict(metadata))
    shape = static_shape(inputs[INPUT])
    if shape is not None and _match(shape, ("N", 3, info.res, info.res), {}) is None:
        raise ModelLoadError(
            f"{path}: input image has shape {_fmt(shape)}, but its metadata hmrt.input_size "
            f"needs [N,3,{info.res},{info.res}]; re-export it with `hmrt export`"
        )
    batch = shape[0] if shape else None
    check_output_shapes(path, outputs, batch)
    check_pose_joints(path, info, outputs.get("pose_joints"))
    return info


def onnx_contract(path: str, model: Any) -> ModelInfo:
    """:func:`check_contract` for an ``onnx.ModelProto`` (read duck-typed: the runtime never
    imports onnx). Initializers listed as graph inputs (old IR versions) are not inputs."""
    graph = model.graph
    weights = {init.name for init in graph.initializer}

    def shape_of(value: Any) -> list[int | str | None] | None:
        tensor = value.type.tensor_type
        if not tensor.HasField("shape"):
            return None
        return [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]

    inputs = {v.name: shape_of(v) for v in graph.input if v.name not in weights}
    outputs = {v.name: shape_of(v) for v in graph.output}
    meta = {p.key: p.value for p in model.metadata_props}
    return check_contract(path, inputs, outputs, meta)
