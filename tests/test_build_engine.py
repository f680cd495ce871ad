"""Engine builder pieces that run without TensorRT: arguments, precision plan, sidecar, the
missing-TensorRT path, the TensorRT API names checked against the lean 11.x wheel, and the
legacy INT8 mode (plan, flags, calibration data and cache) up to the TensorRT calls."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from export_toy import toy_model

from hmrt.export.batch_profile import BatchProfile, check_against_graph, parse_batch_profile
from hmrt.export.onnx_export import ExportOptions, export_model
from hmrt.export.precision_plan import TrtFeatures, plan_precision
from hmrt.runtime.errors import InputError

REPO = Path(__file__).resolve().parents[1]
TRT86 = TrtFeatures((8, 6, 1), True, False, True, True, True, True)
TRT10 = TrtFeatures((10, 3, 0), True, True, True, True, True, True)
TRT11 = TrtFeatures((11, 4, 0), False, True, False, False, False, False)
# The same TensorRT versions with their implicit INT8 calibrator (IInt8EntropyCalibrator2).
TRT86_CAL = TrtFeatures((8, 6, 1), True, False, True, True, True, True, True)
TRT10_CAL = TrtFeatures((10, 3, 0), True, True, True, True, True, True, True)


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory):
    out = tmp_path_factory.mktemp("engine_inputs")
    toy = toy_model()
    fp32 = export_model(toy, out / "toy.onnx", "toy", "edge", ExportOptions())
    fp16 = export_model(
        toy, out / "toy_fp16.onnx", "toy", "edge", ExportOptions(precision="fp16", trt_version="11")
    )
    return {"fp32": fp32, "fp16": fp16}


def test_batch_profiles():
    assert parse_batch_profile("1:1:8") == BatchProfile(1, 1, 8)
    assert parse_batch_profile("4") == BatchProfile(4, 4, 4)
    assert parse_batch_profile("1:4") == BatchProfile(1, 4, 4)
    assert BatchProfile(1, 2, 8).shapes(3, 224, 224) == (
        (1, 3, 224, 224), (2, 3, 224, 224), (8, 3, 224, 224),
    )  # fmt: skip
    for bad in ("0:1:8", "4:2:8", "a", "1:2:3:4"):
        with pytest.raises(InputError, match="MIN:OPT:MAX"):
            parse_batch_profile(bad)
    check_against_graph(BatchProfile(2, 2, 2), 2)
    with pytest.raises(InputError, match="fixed batch of 2"):
        check_against_graph(BatchProfile(1, 1, 8), 2)


def test_fp16_plan_weakly_typed_pins_exactly_the_islands(onnx_files):
    graph = onnx.load(str(onnx_files["fp32"].path))
    for feats in (TRT86, TRT10):
        plan = plan_precision(graph, "fp16", feats)
        assert not plan.strongly_typed
        assert plan.builder_flags == ["FP16", "OBEY_PRECISION_CONSTRAINTS"]
        assert plan.network_flags == (["EXPLICIT_BATCH"] if feats is TRT86 else [])
        island_nodes = {n for names in onnx_files["fp32"].islands.values() for n in names}
        assert set(plan.pinned_nodes) <= island_nodes and len(plan.pinned_nodes) > 10
        ops = {n.op_type for n in graph.graph.node if n.name in plan.pinned_nodes}
        assert {"Softmax", "MatMul", "GridSample"} <= ops and "Conv" not in ops
        assert "Shape" not in ops  # integer shape math is not pinned
        assert plan.pins(plan.pinned_nodes[0]) and plan.pins(plan.pinned_nodes[0] + "_1")
        assert not plan.pins("/model/stem/stem.0/Conv")


def test_fp16_plan_strongly_typed(onnx_files):
    fp16 = onnx.load(str(onnx_files["fp16"].path))
    fp32 = onnx.load(str(onnx_files["fp32"].path))
    plan = plan_precision(fp16, "fp16", TRT11)
    assert plan.strongly_typed and plan.builder_flags == [] and plan.pinned_nodes == []
    assert plan.network_flags == ["STRONGLY_TYPED"]  # accepted and ignored by 11.x
    plan = plan_precision(fp16, "fp16", TRT10)  # 10.x: the FP16 graph builds strongly typed
    assert plan.strongly_typed and plan.builder_flags == []
    with pytest.raises(InputError, match="--precision fp16"):
        plan_precision(fp32, "fp16", TRT11)
    with pytest.raises(InputError, match="FP16 graph"):
        plan_precision(fp16, "fp32", TRT10)
    assert plan_precision(fp32, "fp32", TRT11).strongly_typed
    assert not plan_precision(fp32, "fp32", TRT10).strongly_typed


def test_int8_needs_qdq(onnx_files):
    graph = onnx.load(str(onnx_files["fp32"].path))
    for feats in (TRT86, TRT10, TRT11):
        with pytest.raises(InputError, match="INT8 needs a Q/DQ graph: see issue 6"):
            plan_precision(graph, "int8", feats)


def test_sidecar_schema_and_runtime_reader(onnx_files, tmp_path):
    from hmrt.export.sidecar import REQUIRED_KEYS, make_sidecar, write_sidecar
    from hmrt.runtime.backends.engine_sidecar import read_sidecar

    engine = tmp_path / "toy.engine"
    engine.write_bytes(b"plan")
    onnx_path = tmp_path / "toy.onnx"
    onnx_path.write_bytes(onnx_files["fp32"].path.read_bytes())
    meta = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
    data = make_sidecar(
        engine=engine, onnx_path=onnx_path, tensorrt_version="10.3.0", precision="fp16",
        strongly_typed=False, builder_flags=["FP16", "OBEY_PRECISION_CONSTRAINTS"],
        fp32_layers=12, profiles=[{"input": "image", "min": [1, 3, 64, 64],
                                   "opt": [1, 3, 64, 64], "max": [8, 3, 64, 64]}],
        opset=17, metadata=meta, version_compatible=True,
        gpu={"name": "Orin", "compute_capability": "8.7", "cuda_version": "12.6"},
        build_command="python export/build_engine.py --onnx toy.onnx --fp16",
    )  # fmt: skip
    assert set(data) == set(REQUIRED_KEYS)
    assert data["onnx_path"] == "toy.onnx" and len(data["onnx_sha256"]) == 64
    write_sidecar(engine, data)
    side = read_sidecar(engine)  # the runtime's own reader
    assert side.tensorrt_version == "10.3.0" and side.compute_capability == (8, 7)
    assert side.precision == "fp16" and side.version_compatible
    assert side.onnx_path == onnx_path.resolve() and side.metadata["hmrt.model"] == "toy"
    assert side.rebuild_command().startswith("python export/build_engine.py")


def _build_engine(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "export/build_engine.py", *args], capture_output=True, text=True,
        cwd=REPO,
    )  # fmt: skip


# Legacy INT8 stops before calibrating: the bad --calib-data is never opened.
LEGACY = ("--int8", "--int8-mode", "legacy", "--calib-data", "/no/such/dir")


@pytest.mark.parametrize("precision", [("--fp16",), LEGACY], ids=["fp16", "int8-legacy"])
def test_missing_tensorrt_stops_after_the_onnx(onnx_files, tmp_path, precision):
    if "tensorrt" in sys.modules or _has_full_tensorrt():
        pytest.skip("full TensorRT installed")
    src = tmp_path / "in.onnx"
    src.write_bytes(onnx_files["fp32"].path.read_bytes())
    out = tmp_path / "engines"
    proc = _build_engine("--onnx", str(src), *precision, "--out", str(out))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "TensorRT is not installed" in lines[0] and "pip install tensorrt" in lines[0]
    assert str(src) in lines[0]
    assert not out.exists() or not list(out.iterdir())  # no engine, sidecar or cache


def test_int8_without_qdq_fails_clearly(onnx_files, tmp_path):
    proc = _build_engine("--onnx", str(onnx_files["fp32"].path), "--int8", "--out", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"hmrt: error: {onnx_files['fp32'].path}: INT8 needs a Q/DQ graph: see issue 6 / hmrt "
        "calibrate (implicit INT8 calibration is gone in TensorRT 11)"
    ]


def test_argument_errors(tmp_path):
    proc = _build_engine("--fp16", "--int8", "--onnx", "x.onnx")
    assert proc.returncode == 2 and "not allowed with" in proc.stderr
    proc = _build_engine("--onnx", str(tmp_path / "missing.onnx"))
    assert proc.returncode == 2 and "not found" in proc.stderr
    proc = _build_engine("--onnx", "x.onnx", "--batch", "8:1:1")
    assert proc.returncode == 2 and "MIN:OPT:MAX" in proc.stderr
    help_text = subprocess.run(
        [sys.executable, "-m", "hmrt", "build-engine", "--help"], capture_output=True, text=True
    ).stdout
    for flag in ("--checkpoint", "--onnx", "--fp16", "--int8", "--batch", "--workspace", "--out",
                 "--timing-cache", "--dla", "--version-compatible", "--trt-version"):  # fmt: skip
        assert flag in help_text


def _has_full_tensorrt() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return True


def test_api_names_against_the_lean_wheel():
    """Runtime-side names must exist in tensorrt_lean 11.4; names removed in 11 must be absent
    there (so the builder's hasattr guards are needed); builder-only names are listed."""
    trt = pytest.importorskip("tensorrt_lean")
    from hmrt.export.trt_api import API_NAMES, resolve

    assert trt.__version__.startswith("11.")
    missing, unexpected = [], []
    for api in API_NAMES:
        if api.where != "runtime":
            continue
        present = resolve(trt, api.path) is not None
        if api.gone_in_11 and present:
            unexpected.append(api.path)
        elif not api.gone_in_11 and not present:
            missing.append(api.path)
    assert missing == [] and unexpected == []
    # Builder-only classes are really absent from the lean wheel (so they can't be checked here).
    for cls in ("Builder", "OnnxParser", "NetworkDefinitionCreationFlag", "IBuilderConfig"):
        assert not hasattr(trt, cls)
    # The weak-typing features the plan tests with hasattr are gone in 11.
    from hmrt.export.precision_plan import features_of

    feats = features_of(trt)
    assert not feats.fp16_flag and not feats.obey_flag and not feats.weak_typing


def test_builder_code_uses_only_listed_names():
    from hmrt.export.trt_api import names_by_path

    listed = set(names_by_path())
    files = ("trt_build.py", "build_engine.py", "int8_build.py")
    text = "".join((REPO / "export" / f).read_text() for f in files)
    used = set(re.findall(r"\btrt\.([A-Za-z_][A-Za-z0-9_.]*)", text))
    unlisted = {
        u for u in used if u not in listed and not any(p.startswith(u + ".") for p in listed)
    }
    assert unlisted == set()


# -- legacy implicit INT8 (--int8-mode legacy) ------------------------------------------------
def _with_qdq(src: Path, dst: Path) -> Path:
    """``src`` with a QuantizeLinear/DequantizeLinear pair on its input (explicit quantization)."""
    from onnx import TensorProto, helper

    model = onnx.load(str(src))
    g = model.graph
    g.initializer.extend(
        [helper.make_tensor("qs", TensorProto.FLOAT, [], [0.05]),
         helper.make_tensor("qz", TensorProto.INT8, [], [0])]
    )  # fmt: skip
    first = g.input[0].name
    for node in g.node:
        node.input[:] = ["image_dq" if i == first else i for i in node.input]
    q = helper.make_node("QuantizeLinear", [first, "qs", "qz"], ["image_q"], name="in_q")
    dq = helper.make_node("DequantizeLinear", ["image_q", "qs", "qz"], ["image_dq"], name="in_dq")
    g.node.insert(0, dq)
    g.node.insert(0, q)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    return dst


def test_legacy_int8_plan_calibrates_the_fp32_graph_with_islands_pinned(onnx_files, tmp_path):
    graph = onnx.load(str(onnx_files["fp32"].path))
    fp16_pins = plan_precision(graph, "fp16", TRT10).pinned_nodes
    for feats in (TRT86_CAL, TRT10_CAL):
        plan = plan_precision(graph, "int8", feats, int8_mode="legacy")
        assert not plan.strongly_typed and plan.int8_calibration
        assert plan.builder_flags == ["INT8", "FP16", "OBEY_PRECISION_CONSTRAINTS"]
        assert plan.network_flags == (["EXPLICIT_BATCH"] if feats is TRT86_CAL else [])
        assert plan.pinned_nodes == fp16_pins and len(plan.pinned_nodes) > 10
        ops = {n.op_type for n in graph.graph.node if n.name in plan.pinned_nodes}
        assert {"Softmax", "MatMul", "GridSample"} <= ops and "Conv" not in ops
    # The Q/DQ path is unchanged: a graph without Q/DQ still needs one.
    with pytest.raises(InputError, match="INT8 needs a Q/DQ graph"):
        plan_precision(graph, "int8", TRT10_CAL)
    # No calibrator (TensorRT 11, or a 10.x build without the class): one line naming qdq.
    for feats in (TRT11, TRT10):
        with pytest.raises(InputError, match="--int8-mode qdq") as err:
            plan_precision(graph, "int8", feats, int8_mode="legacy")
        assert "\n" not in str(err.value)
    # Explicit quantization wins over a calibrator.
    qdq = onnx.load(str(_with_qdq(onnx_files["fp32"].path, tmp_path / "qdq.onnx")))
    with pytest.raises(InputError, match="already has Q/DQ nodes"):
        plan_precision(qdq, "int8", TRT10_CAL, int8_mode="legacy")
    fp16 = onnx.load(str(onnx_files["fp16"].path))
    with pytest.raises(InputError, match="FP16 graph"):
        plan_precision(fp16, "int8", TRT10_CAL, int8_mode="legacy")


def _build_engine_here(capsys, *args: str) -> tuple[int, list[str]]:
    """``hmrt build-engine`` in this process: (exit code, stderr lines)."""
    from hmrt.cli import main

    code = main(["build-engine", *args])
    return code, capsys.readouterr().err.strip().splitlines()


def test_int8_mode_argument_errors(onnx_files, tmp_path, capsys):
    src = str(onnx_files["fp32"].path)
    out = tmp_path / "engines"
    cases = [
        (["--int8-mode", "legacy"], "--int8-mode applies to INT8 builds only: add --int8"),
        (["--fp16", "--calib-cache", "c"], "--calib-cache applies to INT8 builds only"),
        (["--int8", "--calib-cache", "c"], "add --int8-mode legacy"),
        (["--int8", "--int8-mode", "legacy", "--calib-method", "minmax"], "entropy calibrator"),
        # No TensorRT 11 has a calibrator: refused before anything is exported or calibrated.
        (["--int8", "--int8-mode", "legacy", "--trt-version", "11"], "--int8-mode qdq"),
    ]
    for extra, fragment in cases:
        code, err = _build_engine_here(capsys, "--onnx", src, "--out", str(out), *extra)
        assert code == 2 and len(err) == 1 and fragment in err[0], (extra, err)
    assert not out.exists()
    with pytest.raises(SystemExit) as exit_:  # argparse's own usage error
        _build_engine_here(capsys, "--onnx", src, "--int8", "--int8-mode", "nope")
    assert exit_.value.code == 2 and "invalid choice" in capsys.readouterr().err
    help_text = subprocess.run(
        [sys.executable, "export/build_engine.py", "--help"], capture_output=True, text=True,
        cwd=REPO,
    ).stdout  # fmt: skip
    assert "--int8-mode {qdq,legacy}" in help_text and "--calib-cache FILE" in help_text


def test_legacy_refuses_a_qdq_graph(onnx_files, tmp_path, capsys):
    qdq = _with_qdq(onnx_files["fp32"].path, tmp_path / "toy_qdq.onnx")
    code, err = _build_engine_here(
        capsys, "--onnx", str(qdq), "--int8", "--int8-mode", "legacy", "--out", str(tmp_path)
    )
    assert code == 2 and len(err) == 1
    assert "already has Q/DQ nodes" in err[0] and "--int8-mode qdq" in err[0]


def test_legacy_tensorrt_11_lean_wheel_has_no_calibrator():
    """The feature test against the real TensorRT 11.4 Python API (the lean wheel)."""
    trt = pytest.importorskip("tensorrt_lean")
    from hmrt.export.int8_build import check_legacy_available
    from hmrt.export.precision_plan import features_of

    assert not features_of(trt).implicit_int8
    with pytest.raises(InputError, match="--int8-mode qdq"):
        check_legacy_available(trt, "11")


def test_calib_cache_path_and_rebuild_command(tmp_path):
    import argparse

    from hmrt.export.build_engine import _build_command
    from hmrt.export.int8_build import calib_cache_path

    args = argparse.Namespace(calib_cache=None)
    assert calib_cache_path(args, Path("engines/danet.engine")) == Path(
        "engines/danet.engine.calib.cache"
    )
    args.calib_cache = tmp_path / "shared.cache"
    assert calib_cache_path(args, Path("engines/danet.engine")) == tmp_path / "shared.cache"
    ns = argparse.Namespace(batch="1:4:8", workspace=1.0, version_compatible=False, dla=None,
                            hardware_compat="NONE")  # fmt: skip
    cmd = _build_command(ns, Path("m.onnx"), Path("e.engine"), "int8", Path("e.engine.calib.cache"))
    assert cmd.endswith("--int8 --int8-mode legacy --calib-cache e.engine.calib.cache")
    assert "--int8-mode" not in _build_command(ns, Path("m.onnx"), Path("e.engine"), "int8")


class _TrtWithCalibrator:
    """Stand-in for a TensorRT 8.6/10 module: only the calibrator base class (plain object)."""

    __version__ = "10.3.0"
    IInt8EntropyCalibrator2 = object


def test_legacy_calibrator_reads_crops_at_the_opt_batch_then_reuses_the_cache(
    onnx_files, tmp_path, capsys
):
    import argparse

    import cv2
    import numpy as np

    from hmrt.export.int8_build import legacy_calibrator

    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        cv2.imwrite(str(folder / f"{i}.png"), rng.integers(0, 256, (48, 80, 3), np.uint8))
    args = argparse.Namespace(calib_data=str(folder), calib_n=5, calib_seed=None, calib_body=None)
    cache = tmp_path / "e.engine.calib.cache"
    cal = legacy_calibrator(_TrtWithCalibrator, args, onnx_files["fp32"].path, 2, cache)
    core = cal.core
    assert core.batcher.shape == (2, 3, 64, 64) and len(core.batcher) == 2  # 5 crops, batch 2
    assert cal.read_calibration_cache() is None  # no cache yet: TensorRT calibrates
    cal.write_calibration_cache(b"TRT-100300-EntropyCalibration2\nimage: 3c010a14\n")
    assert cache.is_file() and [p.name for p in tmp_path.iterdir()] == ["frames", cache.name]
    args.calib_data = "/no/such/folder"  # a rebuild never opens the data
    again = legacy_calibrator(_TrtWithCalibrator, args, onnx_files["fp32"].path, 2, cache)
    assert again.core.batcher is None and again.read_calibration_cache() == cache.read_bytes()
    assert "reusing the calibration cache" in capsys.readouterr().out
