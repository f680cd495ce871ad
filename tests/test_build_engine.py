"""Engine builder pieces that run without TensorRT: arguments, precision plan, sidecar, the
missing-TensorRT path, and the TensorRT API names checked against the lean 11.x wheel."""

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


def test_missing_tensorrt_stops_after_the_onnx(onnx_files, tmp_path):
    if "tensorrt" in sys.modules or _has_full_tensorrt():
        pytest.skip("full TensorRT installed")
    src = tmp_path / "in.onnx"
    src.write_bytes(onnx_files["fp32"].path.read_bytes())
    out = tmp_path / "engines"
    proc = _build_engine("--onnx", str(src), "--fp16", "--out", str(out))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "TensorRT is not installed" in lines[0] and "pip install tensorrt" in lines[0]
    assert str(src) in lines[0]
    assert not out.exists() or not list(out.glob("*.engine*"))


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
    text = "".join((REPO / "export" / f).read_text() for f in ("trt_build.py", "build_engine.py"))
    used = set(re.findall(r"\btrt\.([A-Za-z_][A-Za-z0-9_.]*)", text))
    unlisted = {
        u for u in used if u not in listed and not any(p.startswith(u + ".") for p in listed)
    }
    assert unlisted == set()
