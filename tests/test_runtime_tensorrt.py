"""TensorRT backend without a GPU: the API it calls exists in the installed TensorRT module
(``tensorrt_lean`` 11.4 in CI), the import fallback order, and the sidecar checks on real JSON
files, which must refuse a mismatching engine *before* it is deserialised.

Running an engine needs a GPU and the full TensorRT: that test is marked ``trt``/``gpu`` and
skipped here; nothing in this file claims the GPU path works.
"""

from __future__ import annotations

import ast
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from onnx_fixtures import default_metadata, make_blob_model

from hmrt.runtime.backends import engine_sidecar as es
from hmrt.runtime.backends import tensorrt_backend as tb
from hmrt.runtime.errors import BackendUnavailableError, EngineMismatchError, ModelLoadError

HAS_TRT_MODULE = any(
    importlib.util.find_spec(m) is not None
    for m in ("tensorrt", "tensorrt_lean", "tensorrt_dispatch")
)
needs_trt_module = pytest.mark.skipif(not HAS_TRT_MODULE, reason="no TensorRT python module")
SOURCE = Path(tb.__file__).read_text()


# -- API compatibility with the installed module -------------------------------------------
@needs_trt_module
def test_import_fallback_order_and_lean_detection():
    trt = tb.import_tensorrt()
    assert trt.__name__ in tb.TENSORRT_MODULES
    first = next(m for m in tb.TENSORRT_MODULES if importlib.util.find_spec(m) is not None)
    assert trt.__name__ == first
    assert tb.is_lean(trt) == (first != "tensorrt")


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def _attribute_chains(source: str, *roots: str) -> set[str]:
    """Attribute names accessed on any of ``roots`` (e.g. ``trt``, ``self._context``)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and _dotted(node.value) in roots:
            names.add(node.attr)
    return names


def _all_attributes(source: str) -> set[str]:
    return {n.attr for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Attribute)}


@needs_trt_module
def test_every_tensorrt_name_the_backend_uses_exists():
    trt = tb.import_tensorrt()
    used_module = _attribute_chains(SOURCE, "trt") - {"__version__", "__name__"}
    assert used_module >= {"Logger", "Runtime", "TensorIOMode", "nptype"}
    assert [n for n in used_module if not hasattr(trt, n)] == []
    assert hasattr(trt.Logger, "WARNING") and hasattr(trt, "__version__")
    engine_api = [
        "num_io_tensors",
        "get_tensor_name",
        "get_tensor_mode",
        "get_tensor_dtype",
        "get_tensor_shape",
        "get_tensor_profile_shape",
        "create_execution_context",
    ]
    context_api = ["set_input_shape", "infer_shapes", "get_tensor_shape", "set_tensor_address",
                   "execute_async_v3"]  # fmt: skip
    assert [n for n in engine_api if not hasattr(trt.ICudaEngine, n)] == []
    assert [n for n in context_api if not hasattr(trt.IExecutionContext, n)] == []
    assert hasattr(trt.Runtime, "deserialize_cuda_engine")
    assert hasattr(trt.Runtime, "engine_host_code_allowed")
    assert {"INPUT", "OUTPUT"} <= set(trt.TensorIOMode.__members__)
    # Everything the backend calls on the engine / context / runtime is checked above.
    assert _attribute_chains(SOURCE, "engine", "self._engine") <= set(engine_api)
    assert _attribute_chains(SOURCE, "ctx", "self._context") <= set(context_api)
    assert _attribute_chains(SOURCE, "self._runtime") <= {
        "deserialize_cuda_engine",
        "engine_host_code_allowed",
    }
    # Removed in TensorRT 10: never used.
    removed = {"execute_async_v2", "max_batch_size", "get_binding_index", "binding_is_input"}
    assert not removed & _all_attributes(SOURCE)


@needs_trt_module
def test_dtype_mapping_falls_back_to_bytes():
    trt = tb.import_tensorrt()
    assert tb.numpy_dtype(trt, trt.DataType.FLOAT) == np.float32
    assert tb.numpy_dtype(trt, trt.DataType.HALF) == np.float16
    assert tb.numpy_dtype(trt, trt.DataType.INT32) == np.int32
    assert tb.numpy_dtype(trt, trt.DataType.BF16) == np.uint8  # trt.nptype raises TypeError


def test_cuda_python_names_exist_and_no_gpu_is_a_clean_error():
    pytest.importorskip("cuda.bindings.runtime")
    from cuda.bindings import runtime as rt

    from hmrt.runtime.backends.cuda_api import CudaPython

    src = Path(tb.__file__).with_name("cuda_api.py").read_text()
    used = _attribute_chains(src, "rt", "self.rt")
    assert {"cudaMallocHost", "cudaMemcpyAsync", "cudaStreamBeginCapture"} <= used
    assert [n for n in used if not hasattr(rt, n)] == []
    assert hasattr(rt.cudaStreamCaptureMode, "cudaStreamCaptureModeThreadLocal")
    err, count = rt.cudaGetDeviceCount()
    if int(err) == 0 and count > 0:
        pytest.skip("a CUDA GPU is present")
    with pytest.raises(BackendUnavailableError, match="no usable CUDA GPU"):
        CudaPython(0)


# -- sidecar checks on real JSON files ------------------------------------------------------
def _write_engine(tmp_path: Path, **fields) -> Path:
    """A fake plan plus a sidecar written by hmrt.export.sidecar (the real schema)."""
    from hmrt.export.sidecar import make_sidecar, write_sidecar

    onnx_path = make_blob_model(tmp_path / "blob.onnx")
    engine = tmp_path / "blob.engine"
    engine.write_bytes(b"not a real plan")
    args = dict(
        engine=engine, onnx_path=onnx_path, tensorrt_version="11.4.0.106", precision="fp16",
        strongly_typed=True, builder_flags=[], fp32_layers=0,
        profiles=[{"input": "image", "min": [1, 3, 224, 224], "opt": [1, 3, 224, 224],
                   "max": [8, 3, 224, 224]}],
        opset=17, metadata=default_metadata(), version_compatible=True,
        hardware_compatibility_level="NONE",
        gpu={"name": "NVIDIA A100-SXM4-40GB", "compute_capability": "8.0", "cuda_version": "12.6"},
        build_command=f"python export/build_engine.py --onnx {onnx_path} --out {engine} --fp16",
    )  # fmt: skip
    args.update(fields)
    write_sidecar(engine, make_sidecar(**args))
    return engine


def test_sidecar_fields_are_read_from_the_export_schema(tmp_path):
    engine = _write_engine(tmp_path)
    sc = es.read_sidecar(engine)
    assert sc.tensorrt_version == "11.4.0.106" and sc.version_compatible
    assert sc.compute_capability == (8, 0) and sc.gpu_name.startswith("NVIDIA A100")
    assert sc.onnx_path == (tmp_path / "blob.onnx").resolve()
    assert sc.metadata["hmrt.input_size"] == "224,224"
    assert "--fp16" in sc.rebuild_command()


def test_tensorrt_version_mismatch(tmp_path):
    sc = es.read_sidecar(
        _write_engine(tmp_path, tensorrt_version="8.6.1", version_compatible=False)
    )
    with pytest.raises(EngineMismatchError, match=r"TensorRT 8\.6\.1 .* 10\.3\.0.*build_engine"):
        es.check_sidecar(sc, "10.3.0")
    es.check_sidecar(sc, "8.6.1.6")  # same major.minor.patch: fine
    vc = es.read_sidecar(_write_engine(tmp_path, tensorrt_version="10.3.0"))
    es.check_sidecar(vc, "10.8.0")  # version-compatible: a newer 10.x runs it
    with pytest.raises(EngineMismatchError, match="version-compatible"):
        es.check_sidecar(vc, "10.1.0")  # older runtime
    with pytest.raises(EngineMismatchError):
        es.check_sidecar(vc, "11.4.0")  # other major


def test_gpu_mismatch_and_hardware_compatibility(tmp_path):
    sc = es.read_sidecar(_write_engine(tmp_path))
    with pytest.raises(EngineMismatchError, match=r"compute 8\.0.*compute 8\.7.*rebuild"):
        es.check_sidecar(sc, "11.4.0", "Orin", (8, 7))
    warnings = es.check_sidecar(sc, "11.4.0", "NVIDIA A100-PCIE-40GB", (8, 0))
    assert len(warnings) == 1 and "A100-PCIE" in warnings[0]
    assert es.check_sidecar(sc, "11.4.0", "NVIDIA A100-SXM4-40GB", (8, 0)) == []
    amp = es.read_sidecar(_write_engine(tmp_path, hardware_compatibility_level="AMPERE_PLUS"))
    assert es.check_sidecar(amp, "11.4.0", "RTX 4090", (8, 9)) == []
    with pytest.raises(EngineMismatchError, match="Ampere"):
        es.check_sidecar(amp, "11.4.0", "Tesla T4", (7, 5))


def test_stale_onnx_and_lean_runtime(tmp_path):
    engine = _write_engine(tmp_path, version_compatible=False)
    sc = es.read_sidecar(engine)
    with pytest.raises(EngineMismatchError, match="lean"):
        es.check_sidecar(sc, "11.4.0", lean_runtime=True)
    (tmp_path / "blob.onnx").write_bytes(b"changed")
    with pytest.raises(EngineMismatchError, match="stale"):
        es.check_sidecar(sc, "11.4.0")


def test_missing_or_broken_sidecar(tmp_path):
    engine = tmp_path / "x.engine"
    engine.write_bytes(b"plan")
    with pytest.raises(ModelLoadError, match=r"sidecar x\.engine\.json is missing"):
        es.read_sidecar(engine)
    es.sidecar_path(engine).write_text("{not json")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        es.read_sidecar(engine)
    es.sidecar_path(engine).write_text(json.dumps({"precision": "fp16"}))
    with pytest.raises(ModelLoadError, match="tensorrt_version"):
        es.read_sidecar(engine)


@needs_trt_module
def test_backend_refuses_mismatch_before_deserialising(tmp_path):
    """The plan bytes are garbage: reaching deserialisation would fail differently."""
    from hmrt.runtime import Reconstructor

    engine = _write_engine(tmp_path, tensorrt_version="8.6.1", version_compatible=False)
    with pytest.raises(EngineMismatchError, match=r"--onnx .*blob\.onnx"):
        Reconstructor(engine, backend="tensorrt")
    with pytest.raises(EngineMismatchError):
        Reconstructor(engine)  # auto picks TensorRT for .engine and refuses the same way


@needs_trt_module
def test_matching_engine_without_gpu_is_backend_unavailable(tmp_path):
    trt = tb.import_tensorrt()
    engine = _write_engine(tmp_path, tensorrt_version=trt.__version__)
    try:
        tb.TensorRTBackend(engine)
    except BackendUnavailableError as exc:
        assert "cuda" in str(exc).lower()
    except ModelLoadError:
        pytest.skip("a GPU is present: the fake plan reached deserialisation")
    else:
        pytest.fail("a fake plan must not load")


# -- on a GPU with the full TensorRT only ------------------------------------------------
@pytest.mark.trt
@pytest.mark.gpu
def test_engine_matches_onnxruntime_on_gpu(tmp_path):  # pragma: no cover - GPU machines
    trt = pytest.importorskip("tensorrt")
    from hmrt.runtime import Reconstructor
    from hmrt.runtime.backends.engine_sidecar import file_sha256

    onnx_path = make_blob_model(tmp_path / "blob.onnx")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if (
        hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH")
        and int(trt.__version__.split(".")[0]) < 10
    ):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse_from_file(str(onnx_path))
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape("image", (1, 3, 224, 224), (1, 3, 224, 224), (4, 3, 224, 224))
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    engine = tmp_path / "blob.engine"
    engine.write_bytes(bytes(plan))
    from hmrt.runtime.backends.cuda_api import open_cuda

    name, cc = open_cuda().device_properties()
    es.sidecar_path(engine).write_text(json.dumps({
        "tensorrt_version": trt.__version__, "gpu_name": name, "compute_capability": f"{cc[0]}.{cc[1]}",
        "precision": "fp32", "onnx_path": "blob.onnx", "onnx_sha256": file_sha256(onnx_path),
        "metadata": default_metadata(),
    }))  # fmt: skip
    from onnx_fixtures import blob_frame

    frame = blob_frame(640, 480, (300, 240), (60, 180))
    for graph in (False, True):
        gpu = Reconstructor(engine, backend="tensorrt", cuda_graph=graph)
        cpu = Reconstructor(onnx_path, backend="onnxruntime-cpu")
        a, b = gpu(frame, bbox=(250, 120, 350, 360)), cpu(frame, bbox=(250, 120, 350, 360))
        assert a.backend.startswith("tensorrt[")
        np.testing.assert_allclose(a.joints2d, b.joints2d, atol=0.05)
        batch = gpu.reconstruct_batch(frame, [(250, 120, 350, 360)] * 6)  # > profile max 4
        assert len(batch) == 6
