"""Every TensorRT Python name the engine builder and the trt tests use, and where it exists.

``where``: ``runtime`` names exist in the lean runtime wheel too (``tensorrt_lean``, installed in
CI), so tests check them against it; ``builder`` names exist only in the full ``tensorrt``
package (Builder, OnnxParser, network and config classes) and are written to the documented API
(shared/research/tensorrt.md §1, §9) without a check here. ``guarded``: the code reaches the name
through ``hasattr`` because some supported versions lack it; ``gone_in_11`` marks names that
TensorRT 11 removed (the lean 11.4 wheel confirms their absence where the class exists there).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from hmrt.runtime.errors import MissingDependencyError

INSTALL_HINT = (
    "pip install tensorrt (NVIDIA's wheels), or on Jetson use JetPack's python3-libnvinfer "
    "from a --system-site-packages venv"
)


@dataclass(frozen=True)
class ApiName:
    """One dotted attribute path under the ``tensorrt`` module."""

    path: str
    where: str  # runtime | builder
    guarded: bool = False
    gone_in_11: bool = False


def _n(path: str, where: str = "builder", guarded: bool = False, gone: bool = False) -> ApiName:
    return ApiName(path, where, guarded, gone)


API_NAMES: tuple[ApiName, ...] = (
    # logging, enums shared by builder and runtime
    _n("Logger", "runtime"),
    _n("Logger.WARNING", "runtime"),
    _n("Logger.INFO", "runtime"),
    _n("Logger.VERBOSE", "runtime"),
    _n("__version__", "runtime"),
    _n("BuilderFlag", "runtime"),
    _n("BuilderFlag.FP16", "runtime", guarded=True, gone=True),
    _n("BuilderFlag.INT8", "runtime", guarded=True, gone=True),
    _n("BuilderFlag.OBEY_PRECISION_CONSTRAINTS", "runtime", guarded=True, gone=True),
    _n("BuilderFlag.VERSION_COMPATIBLE", "runtime"),
    _n("BuilderFlag.EXCLUDE_LEAN_RUNTIME", "runtime"),
    _n("BuilderFlag.GPU_FALLBACK", "runtime"),
    _n("BuilderFlag.TF32", "runtime"),
    _n("MemoryPoolType.WORKSPACE", "runtime"),
    _n("DeviceType.DLA", "runtime"),
    _n("DeviceType.GPU", "runtime"),
    _n("HardwareCompatibilityLevel.NONE", "runtime", guarded=True),
    _n("HardwareCompatibilityLevel.AMPERE_PLUS", "runtime", guarded=True),
    _n("HardwareCompatibilityLevel.SAME_COMPUTE_CAPABILITY", "runtime", guarded=True),
    _n("DataType.FLOAT", "runtime"),
    _n("DataType.HALF", "runtime"),
    _n("float32", "runtime"),
    _n("float16", "runtime"),
    _n("nptype", "runtime"),
    _n("ITimingCache.serialize", "runtime"),
    _n("IHostMemory.nbytes", "runtime"),
    _n("IOptimizationProfile.set_shape", "runtime"),
    # runtime side (engine loading in the trt tests and hmrt.runtime's tensorrt backend)
    _n("Runtime", "runtime"),
    _n("Runtime.deserialize_cuda_engine", "runtime"),
    _n("Runtime.engine_host_code_allowed", "runtime"),
    _n("Runtime.DLA_core", "runtime"),
    _n("ICudaEngine.num_io_tensors", "runtime"),
    _n("ICudaEngine.get_tensor_name", "runtime"),
    _n("ICudaEngine.get_tensor_mode", "runtime"),
    _n("ICudaEngine.get_tensor_dtype", "runtime"),
    _n("ICudaEngine.get_tensor_shape", "runtime"),
    _n("ICudaEngine.get_tensor_profile_shape", "runtime"),
    _n("ICudaEngine.num_optimization_profiles", "runtime"),
    _n("ICudaEngine.create_execution_context", "runtime"),
    _n("TensorIOMode.INPUT", "runtime"),
    _n("TensorIOMode.OUTPUT", "runtime"),
    _n("IExecutionContext.set_input_shape", "runtime"),
    _n("IExecutionContext.set_tensor_address", "runtime"),
    _n("IExecutionContext.execute_async_v3", "runtime"),
    _n("IExecutionContext.infer_shapes", "runtime"),
    _n("IExecutionContext.get_tensor_shape", "runtime"),
    # builder only (full tensorrt package)
    _n("Builder"),
    _n("Builder.create_network"),
    _n("Builder.create_builder_config"),
    _n("Builder.create_optimization_profile"),
    _n("Builder.build_serialized_network"),
    _n("Builder.num_DLA_cores"),
    _n("NetworkDefinitionCreationFlag.EXPLICIT_BATCH", guarded=True, gone=True),
    _n("NetworkDefinitionCreationFlag.STRONGLY_TYPED", guarded=True),
    _n("OnnxParser"),
    _n("OnnxParser.parse_from_file"),
    _n("OnnxParser.num_errors"),
    _n("OnnxParser.get_error"),
    _n("ParserError.desc"),
    _n("ParserError.node"),
    _n("ParserError.node_name", guarded=True),
    _n("INetworkDefinition.num_layers"),
    _n("INetworkDefinition.get_layer"),
    _n("INetworkDefinition.num_inputs"),
    _n("INetworkDefinition.get_input"),
    _n("ILayer.name"),
    _n("ILayer.num_outputs"),
    _n("ILayer.get_output"),
    _n("ILayer.precision", guarded=True, gone=True),
    _n("ILayer.set_output_type", guarded=True, gone=True),
    _n("ITensor.name"),
    _n("ITensor.dtype"),
    _n("ITensor.shape"),
    _n("IBuilderConfig.set_memory_pool_limit", guarded=True),
    _n("IBuilderConfig.max_workspace_size", guarded=True, gone=True),
    _n("IBuilderConfig.set_flag"),
    _n("IBuilderConfig.add_optimization_profile"),
    _n("IBuilderConfig.create_timing_cache"),
    _n("IBuilderConfig.set_timing_cache"),
    _n("IBuilderConfig.get_timing_cache"),
    _n("IBuilderConfig.default_device_type"),
    _n("IBuilderConfig.DLA_core"),
    _n("IBuilderConfig.set_device_type"),
    _n("IBuilderConfig.can_run_on_DLA"),
    _n("IBuilderConfig.hardware_compatibility_level", guarded=True),
    # legacy implicit INT8 (TensorRT 8.6 / 10 only: export/int8_build.py, calib/trt_calibrator.py)
    _n("IInt8EntropyCalibrator2", guarded=True, gone=True),
    _n("IBuilderConfig.int8_calibrator", guarded=True, gone=True),
    _n("IBuilderConfig.set_calibration_profile", guarded=True, gone=True),
)


def names_by_path() -> dict[str, ApiName]:
    """``{dotted path: ApiName}``."""
    return {a.path: a for a in API_NAMES}


def resolve(module: ModuleType, path: str) -> object | None:
    """``getattr`` chain for a dotted ``path``; None when any step is missing."""
    obj: object = module
    for part in path.split("."):
        if not hasattr(obj, part):
            return None
        obj = getattr(obj, part)
    return obj


def import_tensorrt() -> ModuleType:
    """The full ``tensorrt`` package (builder + ONNX parser), or MissingDependencyError."""
    try:
        trt = importlib.import_module("tensorrt")
    except ImportError:
        trt = None
    if trt is None or not hasattr(trt, "Builder") or not hasattr(trt, "OnnxParser"):
        raise MissingDependencyError("tensorrt", "building a TensorRT engine", INSTALL_HINT)
    return trt


class TensorRTMissingError(MissingDependencyError):
    """No full TensorRT here: the ONNX was written and checked, the engine was not built."""

    def __init__(self, onnx_path: str, trt_target: str):
        Exception.__init__(
            self,
            f"TensorRT is not installed, so no engine was built; the ONNX is written and "
            f"audited for TensorRT {trt_target}: {onnx_path}; to build the engine install "
            f"TensorRT with: {INSTALL_HINT}; then rerun",
        )
        self.package = "tensorrt"
