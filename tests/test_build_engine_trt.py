"""Real TensorRT builds (marked ``trt``: skipped where the full TensorRT package is absent).

Written to the documented API (shared/research/tensorrt.md §2, §9) and not run on the
project's CPU machine: build FP32 and FP16 engines of the toy model through
``export/build_engine.py`` and compare their outputs with ONNX Runtime, and a legacy INT8 engine
(``--int8-mode legacy``: entropy calibrator, cache reused on rebuild).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from export_toy import toy_model

from hmrt.export.onnx_export import ExportOptions, export_model
from hmrt.export.parity import ort_outputs

pytestmark = pytest.mark.trt
REPO = Path(__file__).resolve().parents[1]


def _run_engine(engine: Path, images: np.ndarray) -> dict[str, np.ndarray]:
    """Execute a plan with cuda-python buffers (explicit copies, one stream)."""
    import tensorrt as trt
    from cuda.bindings import runtime as cudart

    def check(result):
        err, *rest = result if isinstance(result, tuple) else (result,)
        assert int(err) == 0, err
        return rest[0] if len(rest) == 1 else rest

    logger = trt.Logger(trt.Logger.WARNING)
    runtime = trt.Runtime(logger)
    plan = runtime.deserialize_cuda_engine(engine.read_bytes())
    assert plan is not None
    context = plan.create_execution_context()
    stream = check(cudart.cudaStreamCreate())
    names = [plan.get_tensor_name(i) for i in range(plan.num_io_tensors)]
    context.set_input_shape("image", images.shape)
    assert context.infer_shapes() == []
    host, device = {}, {}
    for name in names:
        shape = tuple(context.get_tensor_shape(name))
        dtype = trt.nptype(plan.get_tensor_dtype(name))
        host[name] = (
            np.ascontiguousarray(images.astype(dtype))
            if name == "image"
            else np.empty(shape, dtype)
        )
        device[name] = check(cudart.cudaMalloc(host[name].nbytes))
        context.set_tensor_address(name, int(device[name]))
    h2d, d2h = (
        cudart.cudaMemcpyKind.cudaMemcpyHostToDevice,
        cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost,
    )
    check(
        cudart.cudaMemcpyAsync(
            device["image"], host["image"].ctypes.data, host["image"].nbytes, h2d, stream
        )
    )
    assert context.execute_async_v3(int(stream))
    for name in names:
        if plan.get_tensor_mode(name) == trt.TensorIOMode.OUTPUT:
            check(
                cudart.cudaMemcpyAsync(
                    host[name].ctypes.data, device[name], host[name].nbytes, d2h, stream
                )
            )
    check(cudart.cudaStreamSynchronize(stream))
    for ptr in device.values():
        check(cudart.cudaFree(ptr))
    return {n: host[n].astype(np.float32) for n in names if n != "image"}


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_engine_matches_onnxruntime(tmp_path, precision):
    import tensorrt as trt

    from hmrt.export.precision_plan import features_of
    from hmrt.runtime.backends.engine_sidecar import check_sidecar, read_sidecar

    fp16_graph = precision == "fp16" and not features_of(trt).weak_typing
    result = export_model(toy_model(), tmp_path / "toy.onnx", "toy", "edge",
                          ExportOptions(precision="fp16" if fp16_graph else "fp32",
                                        trt_version="11" if fp16_graph else "10"))  # fmt: skip
    args = ["--onnx", str(result.path), "--out", str(tmp_path / "toy.engine"), "--batch", "1:2:4",
            "--timing-cache", str(tmp_path / "timing.cache")]  # fmt: skip
    if precision == "fp16":
        args.append("--fp16")
    proc = subprocess.run([sys.executable, "export/build_engine.py", *args],
                          capture_output=True, text=True, cwd=REPO)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    engine = tmp_path / "toy.engine"
    side = read_sidecar(engine)
    assert side.precision == precision and (tmp_path / "timing.cache").is_file()
    check_sidecar(side, trt.__version__)
    images = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    ref = ort_outputs(result.path, images, 2)
    out = _run_engine(engine, images)
    tol = 2e-3 if precision == "fp32" else 2e-2  # TF32 is on by default
    for name in ("vertices", "joints3d", "rotmats"):
        assert np.abs(out[name] - ref[name]).max() < tol, name


def test_legacy_int8_build_calibrates_then_reuses_the_cache(tmp_path):
    """TensorRT 8.6/10 only: ``--int8 --int8-mode legacy`` calibrates the FP32 graph with the
    entropy calibrator (crops from a folder of images), writes the cache, and a rebuild reads it
    instead of calibrating (the data folder is gone by then)."""
    import shutil

    import cv2
    import tensorrt as trt

    from hmrt.runtime.backends.engine_sidecar import read_sidecar

    if not hasattr(trt, "IInt8EntropyCalibrator2"):
        pytest.skip(f"TensorRT {trt.__version__} has no implicit INT8 calibration")
    result = export_model(toy_model(), tmp_path / "toy.onnx", "toy", "edge", ExportOptions())
    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        cv2.imwrite(str(frames / f"{i}.png"), rng.integers(0, 256, (64, 64, 3), np.uint8))
    engine = tmp_path / "toy_int8.engine"
    args = ["--onnx", str(result.path), "--out", str(engine), "--int8", "--int8-mode", "legacy",
            "--calib-data", str(frames), "--calib-n", "8", "--batch", "1:2:4"]  # fmt: skip
    proc = subprocess.run([sys.executable, "export/build_engine.py", *args],
                          capture_output=True, text=True, cwd=REPO)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    cache = tmp_path / "toy_int8.engine.calib.cache"
    assert cache.is_file() and cache.stat().st_size > 0
    side = read_sidecar(engine)
    assert side.precision == "int8" and "INT8" in side.raw["builder_flags"]
    assert "--calib-cache" in side.build_command
    shutil.rmtree(frames)
    proc = subprocess.run([sys.executable, "export/build_engine.py", *args],
                          capture_output=True, text=True, cwd=REPO)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "reusing the calibration cache" in proc.stdout
    images = np.random.default_rng(1).standard_normal((2, 3, 64, 64)).astype(np.float32)
    out = _run_engine(engine, images)
    assert out["vertices"].shape == (2, 30, 3) and np.isfinite(out["vertices"]).all()
