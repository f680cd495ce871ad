"""The TensorRT calls of an engine build, written to the documented 8.6 / 10.x / 11.x API.

Every version difference is a ``hasattr`` feature test (shared/research/tensorrt.md §9); names
used here are listed in :mod:`hmrt.export.trt_api` (a test keeps the two in sync). Not run on
this project's CI machine (no GPU, no full TensorRT): the ``trt``-marked tests exercise it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hmrt.export.batch_profile import BatchProfile
from hmrt.export.precision_plan import PrecisionPlan
from hmrt.runtime.errors import HmrtError


class EngineBuildError(HmrtError):
    """TensorRT rejected the network (parser errors) or the build returned no plan."""


@dataclass
class BuildSettings:
    """Builder settings from the command line."""

    workspace_gb: float = 2.0
    timing_cache: Path | None = None
    dla_core: int | None = None
    version_compatible: bool = False
    hardware_compatibility: str = "NONE"  # NONE | AMPERE_PLUS | SAME_COMPUTE_CAPABILITY
    optimization_level: int | None = None
    # DLA builds: ONNX node -> why it stays on the GPU (hmrt.export.dla.dla_gpu_nodes)
    gpu_nodes: dict[str, str] = field(default_factory=dict)


@dataclass
class BuildOutcome:
    """The serialized plan and facts for the sidecar."""

    plan: bytes
    builder_flags: list[str] = field(default_factory=list)
    fp32_layers: int = 0
    profiles: list[dict[str, Any]] = field(default_factory=list)
    gpu_layers: list[str] = field(default_factory=list)  # DLA builds: layers put on the GPU


def network_flags(trt: Any, names: list[str]) -> int:
    """OR of ``1 << int(NetworkDefinitionCreationFlag.X)``: never hard-coded bits (they moved in 11)."""
    flags = 0
    for name in names:
        flags |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, name))
    return flags


def parse_onnx(trt: Any, network: Any, logger: Any, onnx_path: Path) -> Any:
    """Parse ``onnx_path`` into ``network``; on failure raise with every error's node named."""
    parser = trt.OnnxParser(network, logger)
    if parser.parse_from_file(str(onnx_path)):
        return parser
    lines = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        node = err.node_name() if hasattr(err, "node_name") else f"#{err.node()}"
        lines.append(f"node {node}: {err.desc()}")
    for line in lines:
        print(f"hmrt build-engine: parser error: {line}", file=sys.stderr)
    first = lines[0] if lines else "no error recorded"
    more = f" (+{len(lines) - 1} more above)" if len(lines) > 1 else ""
    raise EngineBuildError(f"TensorRT could not parse {onnx_path}: {first}{more}")


def pin_fp32_layers(trt: Any, network: Any, plan: PrecisionPlan) -> int:
    """Weakly typed builds: FP32 precision and output types on every FP32-island layer."""
    if not plan.pinned_nodes or not hasattr(trt.ILayer, "precision"):
        return 0
    floats = (trt.float32, trt.float16)
    pinned = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if not plan.pins(layer.name):
            continue
        outs = [j for j in range(layer.num_outputs) if layer.get_output(j).dtype in floats]
        if not outs:
            continue  # shape/index layers carry no float math to pin
        layer.precision = trt.float32
        for j in outs:
            layer.set_output_type(j, trt.float32)
        pinned += 1
    return pinned


def configure(
    trt: Any, builder: Any, config: Any, plan: PrecisionPlan, settings: BuildSettings
) -> list[str]:
    """Memory pool, precision flags, DLA, compatibility; returns the BuilderFlag names set."""
    workspace = int(settings.workspace_gb * (1 << 30))
    if hasattr(config, "set_memory_pool_limit"):  # 8.3+
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace)
    else:  # TensorRT 8.2 (JetPack 4.6); removed in 10.0
        config.max_workspace_size = workspace
    if settings.optimization_level is not None and hasattr(config, "builder_optimization_level"):
        config.builder_optimization_level = settings.optimization_level
    flags = list(plan.builder_flags)
    if settings.version_compatible:
        flags.append("VERSION_COMPATIBLE")
    if settings.dla_core is not None:
        if builder.num_DLA_cores <= settings.dla_core:
            raise EngineBuildError(
                f"--dla {settings.dla_core}: this device has {builder.num_DLA_cores} DLA core(s)"
            )
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = settings.dla_core
        # Layers DLA cannot run go to the GPU explicitly (place_dla_layers); the flag lets
        # TensorRT split the network into DLA and GPU parts at all.
        flags.append("GPU_FALLBACK")
    for name in flags:
        if not hasattr(trt.BuilderFlag, name):
            raise EngineBuildError(f"TensorRT {trt.__version__} has no BuilderFlag.{name}")
        config.set_flag(getattr(trt.BuilderFlag, name))
    if settings.hardware_compatibility != "NONE":
        if not hasattr(config, "hardware_compatibility_level") or not hasattr(
            trt.HardwareCompatibilityLevel, settings.hardware_compatibility
        ):
            raise EngineBuildError(
                f"TensorRT {trt.__version__} has no hardware compatibility level "
                f"{settings.hardware_compatibility}"
            )
        config.hardware_compatibility_level = getattr(
            trt.HardwareCompatibilityLevel, settings.hardware_compatibility
        )
    return flags


def place_dla_layers(trt: Any, network: Any, config: Any, gpu_nodes: dict[str, str]) -> list[str]:
    """DLA builds: put on the GPU, explicitly, every layer hmrt's graph rules or TensorRT itself
    (``can_run_on_DLA``) keep off the DLA, so nothing depends on the silent GPU fallback;
    returns their names. Call after ``default_device_type = DLA`` (:func:`configure`)."""
    from hmrt.export.dla import gpu_layer_reason

    placed = []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if gpu_layer_reason(layer.name, gpu_nodes) is None and config.can_run_on_DLA(layer):
            continue
        config.set_device_type(layer, trt.DeviceType.GPU)
        placed.append(layer.name)
    return placed


def load_timing_cache(config: Any, path: Path | None) -> Any:
    """Create the config's timing cache from ``path`` (empty when the file does not exist)."""
    data = path.read_bytes() if path is not None and path.is_file() else b""
    cache = config.create_timing_cache(data)
    config.set_timing_cache(cache, False)
    return cache


def save_timing_cache(config: Any, path: Path | None) -> None:
    """Write the (updated) timing cache atomically."""
    if path is None:
        return
    from hmrt.runtime.atomic import write_bytes_atomic

    write_bytes_atomic(path, bytes(config.get_timing_cache().serialize()))


def attach_legacy_calibrator(trt: Any, config: Any, calibrator: Any, profile: Any) -> None:
    """Legacy INT8: the entropy calibrator on the config, calibrating at ``profile``'s shapes.

    Feature-tested on the config itself (``int8_calibrator`` is gone in TensorRT 11).
    """
    if not hasattr(config, "int8_calibrator"):
        raise EngineBuildError(
            f"TensorRT {trt.__version__} has no IBuilderConfig.int8_calibrator (implicit INT8 "
            "was removed in 11); build from a Q/DQ graph with --int8-mode qdq"
        )
    from hmrt.calib.trt_calibrator import attach_calibrator

    attach_calibrator(trt, config, calibrator, profile)


def build_plan(
    trt: Any,
    onnx_path: Path,
    plan: PrecisionPlan,
    batch: BatchProfile,
    settings: BuildSettings,
    calibrator: Any = None,
) -> BuildOutcome:
    """Parse, configure, add the optimization profile, build; return the serialized plan.

    ``calibrator``: the legacy INT8 calibrator, required when ``plan.int8_calibration``.
    """
    if plan.int8_calibration and calibrator is None:
        raise ValueError("a legacy INT8 plan needs a calibrator")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt, plan.network_flags))
    parse_onnx(trt, network, logger, onnx_path)
    config = builder.create_builder_config()
    flags = configure(trt, builder, config, plan, settings)
    pinned = pin_fp32_layers(trt, network, plan)
    gpu_layers = []
    if settings.dla_core is not None:
        gpu_layers = place_dla_layers(trt, network, config, settings.gpu_nodes)
    profile = builder.create_optimization_profile()
    profiles = []
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        chw = tuple(int(d) for d in tensor.shape)[1:]
        lo, opt, hi = batch.shapes(*chw)
        profile.set_shape(tensor.name, lo, opt, hi)
        profiles.append({"input": tensor.name, "min": list(lo), "opt": list(opt), "max": list(hi)})
    config.add_optimization_profile(profile)
    if plan.int8_calibration:
        attach_legacy_calibrator(trt, config, calibrator, profile)
    load_timing_cache(config, settings.timing_cache)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(
            f"TensorRT returned no engine for {onnx_path} (see the builder log above); try a "
            "larger --workspace or rerun with --debug"
        )
    save_timing_cache(config, settings.timing_cache)
    return BuildOutcome(bytes(serialized), flags, pinned, profiles, gpu_layers)


def gpu_info() -> dict[str, str | None]:
    """GPU name, compute capability and CUDA runtime version (cuda-python, else nvidia-smi)."""
    info: dict[str, str | None] = {"name": None, "compute_capability": None, "cuda_version": None}
    try:
        from cuda.bindings import runtime as cudart

        err, props = cudart.cudaGetDeviceProperties(0)
        if int(err) == 0:
            name = props.name
            info["name"] = (name.decode() if isinstance(name, bytes) else str(name)).strip("\0 ")
            info["compute_capability"] = f"{props.major}.{props.minor}"
        err, ver = cudart.cudaRuntimeGetVersion()
        if int(err) == 0:
            info["cuda_version"] = f"{ver // 1000}.{(ver % 1000) // 10}"
        return info
    except Exception:
        pass
    import shutil
    import subprocess

    if shutil.which("nvidia-smi"):
        out = (
            subprocess.run(
                ["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                check=False,
            )
            .stdout.strip()
            .splitlines()
        )
        if out and "," in out[0]:
            name, cc = (p.strip() for p in out[0].split(",", 1))
            info.update(name=name, compute_capability=cc)
    return info
