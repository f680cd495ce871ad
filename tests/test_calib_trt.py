"""The legacy IInt8EntropyCalibrator2 path: batching, host/device buffers, cache round trip (CPU),
the feature test against TensorRT 11's lean wheel, and a real INT8 build where TensorRT exists."""

from __future__ import annotations

import numpy as np
import pytest
from calib_helpers import danet_edge_fp32, parts_body, synth_crops

from hmrt.calib.trt_calibrator import (
    CalibrationBatcher,
    CalibratorCore,
    CalibratorUnavailableError,
    HostCopier,
    calibrator_core,
    make_entropy_calibrator,
)
from hmrt.runtime.errors import InputError


def test_batcher_gives_full_profile_batches():
    crops = synth_crops()  # 12 real crops
    b = CalibrationBatcher(crops, 5)
    batches = list(b)
    assert len(b) == 2 and b.dropped == 2 and b.shape == (5, 3, 224, 224)
    assert all(x.shape == b.shape and x.flags.c_contiguous for x in batches)
    np.testing.assert_array_equal(np.concatenate(batches), crops[:10])
    small = CalibrationBatcher(crops[:3], 8)  # fewer crops than one batch: repeated to fill it
    (only,) = list(small)
    np.testing.assert_array_equal(only, np.concatenate([crops[:3]] * 3)[:8])
    with pytest.raises(InputError):
        CalibrationBatcher(crops[:0], 4)


def test_core_serves_every_batch_through_the_copier_then_frees():
    crops = synth_crops()
    copier = HostCopier()
    core = CalibratorCore(CalibrationBatcher(crops, 4), None, copier)
    assert core.get_batch_size() == 1  # explicit batch: the batch is in the tensor shape
    seen = []
    while (ptrs := core.get_batch(["image"])) is not None:
        (ptr,) = ptrs
        seen.append(copier.read(ptr, np.float32, (4, 3, 224, 224)))
    np.testing.assert_array_equal(np.concatenate(seen), crops)
    assert core.batches_served == 3 and copier.uploads == 3
    assert copier._buffers == {}  # released after the last batch
    with pytest.raises(InputError, match="one input 'image'"):
        CalibratorCore(CalibrationBatcher(crops, 4), None, HostCopier()).get_batch(["x"])


def test_calibration_cache_round_trip_is_atomic(tmp_path):
    cache = tmp_path / "sub" / "danet.calib"
    core = CalibratorCore(None, cache, HostCopier())
    assert core.read_calibration_cache() is None  # no file: TensorRT calibrates
    blob = b"TRT-8601-EntropyCalibration2\nimage: 3c010a14\n"
    core.write_calibration_cache(memoryview(blob))  # TensorRT hands over a buffer
    assert cache.read_bytes() == blob
    assert [p.name for p in cache.parent.iterdir()] == ["danet.calib"]  # no temp files
    rebuilt = CalibratorCore(None, cache, HostCopier())
    assert rebuilt.read_calibration_cache() == blob  # a rebuild skips calibration
    cache.write_bytes(b"")
    assert rebuilt.read_calibration_cache() is None
    with pytest.raises(InputError, match="pass --calib-data"):
        rebuilt.get_batch(["image"])


def test_core_from_real_data_and_cache_short_circuit(tmp_path):
    core = calibrator_core(
        danet_edge_fp32(), "synth", 4, 2, tmp_path / "c.cache", body=parts_body(), progress=False
    )
    np.testing.assert_array_equal(core.batcher.images, synth_crops()[:4])
    (tmp_path / "c.cache").write_bytes(b"TRT-8601-EntropyCalibration2\n")
    cached = calibrator_core(danet_edge_fp32(), "/no/such/folder", 4, 2, tmp_path / "c.cache")
    assert cached.batcher is None and cached.read_calibration_cache()


def test_tensorrt_11_has_no_implicit_calibrator():
    trt = pytest.importorskip("tensorrt_lean")  # the real 11.x Python API, importable on CPU
    assert not hasattr(trt, "IInt8EntropyCalibrator2")
    with pytest.raises(CalibratorUnavailableError, match="hmrt calibrate"):
        make_entropy_calibrator(trt, CalibratorCore(None, None, HostCopier()))


@pytest.mark.trt
def test_weakly_typed_int8_build_with_the_calibrator(tmp_path):
    """TensorRT 8.6/10 only: build an INT8 engine of the FP32 graph with the calibrator."""
    import onnx
    import tensorrt as trt

    from hmrt.calib.trt_calibrator import attach_calibrator
    from hmrt.export.precision_plan import PrecisionPlan, float_island_nodes
    from hmrt.export.trt_build import network_flags, parse_onnx, pin_fp32_layers

    if not hasattr(trt, "IInt8EntropyCalibrator2"):
        pytest.skip(f"TensorRT {trt.__version__} has no implicit INT8 calibration")
    cache = tmp_path / "danet.calib"
    core = CalibratorCore(CalibrationBatcher(synth_crops(), 2), cache)
    calibrator = make_entropy_calibrator(trt, core)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = (
        ["EXPLICIT_BATCH"] if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH") else []
    )
    network = builder.create_network(network_flags(trt, flags))
    parse_onnx(trt, network, logger, danet_edge_fp32())
    config = builder.create_builder_config()
    # Implicit INT8 would quantize the FP32 islands too: pin them, as the FP16 build does.
    islands = float_island_nodes(onnx.load(str(danet_edge_fp32())))
    plan = PrecisionPlan("int8", False, pinned_nodes=islands)
    assert pin_fp32_layers(trt, network, plan) > 10
    for flag in ("FP16", "OBEY_PRECISION_CONSTRAINTS"):
        config.set_flag(getattr(trt.BuilderFlag, flag))
    profile = builder.create_optimization_profile()
    shape = (2, 3, 224, 224)
    profile.set_shape("image", (1, *shape[1:]), shape, shape)
    config.add_optimization_profile(profile)
    attach_calibrator(trt, config, calibrator, profile)
    assert builder.build_serialized_network(network, config) is not None
    assert cache.is_file() and core.batches_served == 6
