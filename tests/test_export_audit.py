"""The graph audit against the TensorRT ONNX support table: ops, opsets and known traps."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from hmrt.export.audit import AuditError, audit, audit_model
from hmrt.export.trt_support import TABLE_PATH, load_support_table

REPO = Path(__file__).resolve().parents[1]
F = TensorProto.FLOAT


def graph(nodes, inputs, outputs, opset=17, inits=()):
    model = helper.make_model(
        helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits)),
        opset_imports=[helper.make_opsetid("", opset)],
    )
    model.ir_version = 8
    return model


def vi(name, shape, t=F):
    return helper.make_tensor_value_info(name, t, shape)


def grid_sample(mode="bilinear", rank=4, opset=17):
    x = vi("x", [1, 3, 8, 8] if rank == 4 else [1, 3, 4, 8, 8])
    g = vi("g", [1, 8, 8, 2] if rank == 4 else [1, 4, 8, 8, 3])
    node = helper.make_node("GridSample", ["x", "g"], ["y"], name="roi/GridSample", mode=mode)
    return graph([node], [x, g], [vi("y", None)], opset=opset)


def errors(model, version):
    return [f.line() for f in audit(model, version).errors]


def test_table_has_every_version_with_a_source():
    data = json.loads(TABLE_PATH.read_text())
    assert data["version_order"] == ["8.2", "8.4", "8.5", "8.6", "10", "11"]
    for row in data["versions"].values():
        assert row["source"] and row["min_opset"] <= row["default_opset"] <= row["max_opset"]
    for rule in data["restrictions"]:
        assert rule["why"] and rule["source"] and rule["level"] in ("error", "warning")
    table = load_support_table()
    assert not table.version("8.2").supports("GridSample")
    assert table.version("8.5").supports("GridSample")
    assert table.version("10.3").name == "10.3" and table.version("10.3").max_opset == 20
    assert not table.version("11").supports("AffineGrid")


def test_gridsample_needs_trt_85_and_names_the_node():
    model = grid_sample()
    assert errors(model, "8.6") == []
    found = errors(model, "8.4")
    assert len(found) == 1 and "roi/GridSample" in found[0] and "--roi-pool gather" in found[0]
    with pytest.raises(AuditError, match=r"node 'roi/GridSample' \(GridSample\)"):
        audit_model(model, "8.2")


def test_gridsample_opset20_mode_strings_are_refused():
    for mode in ("linear", "cubic"):
        found = errors(grid_sample(mode=mode, opset=20), "10")
        assert any("silently become NEAREST" in e for e in found), found


def test_five_d_gridsample_only_from_112():
    model = grid_sample(rank=5, opset=20)
    assert any("4-D" in e for e in errors(model, "10"))
    assert not any("4-D" in e for e in errors(model, "11.2"))


def test_affine_grid_and_nonzero_are_refused():
    theta = vi("theta", [1, 2, 3])
    size = helper.make_tensor("size", TensorProto.INT64, [4], [1, 3, 8, 8])
    affine = graph(
        [helper.make_node("AffineGrid", ["theta", "size"], ["y"], name="stn/AffineGrid")],
        [theta], [vi("y", None)], opset=20, inits=[size],
    )  # fmt: skip
    assert any("AffineGrid" in e and "base grid" in e for e in errors(affine, "11"))
    nz = graph([helper.make_node("NonZero", ["x"], ["y"], name="nz")], [vi("x", [4])],
               [vi("y", None, TensorProto.INT64)])  # fmt: skip
    assert any("data-dependent" in e for e in errors(nz, "10"))


def test_scatternd_reduction_and_runtime_reduce_axes():
    data, idx, upd = vi("d", [4, 3]), vi("i", [2, 1], TensorProto.INT64), vi("u", [2, 3])
    node = helper.make_node("ScatterND", ["d", "i", "u"], ["y"], name="scat", reduction="add")
    assert any("reduction" in e for e in errors(graph([node], [data, idx, upd], [vi("y", None)],
                                                      opset=18), "11"))  # fmt: skip
    axes = vi("axes", [1], TensorProto.INT64)
    red = helper.make_node("ReduceSum", ["x", "axes"], ["y"], name="red")
    model = graph([red], [vi("x", [2, 3]), axes], [vi("y", None)], opset=18)
    assert any("computed at run time" in e for e in errors(model, "10"))
    const = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    model = graph([red], [vi("x", [2, 3])], [vi("y", None)], opset=18, inits=[const])
    assert errors(model, "10") == []


def test_einsum_ellipsis_only_after_8x():
    node = helper.make_node("Einsum", ["a", "b"], ["y"], name="lbs", equation="...ij,jk->...ik")
    model = graph([node], [vi("a", [2, 3, 4]), vi("b", [4, 5])], [vi("y", None)])
    assert any("ellipsis" in e for e in errors(model, "8.6"))
    assert errors(model, "10") == []


def test_opset_range_per_version():
    model = grid_sample(opset=17)
    assert any("opset 17 is outside" in e for e in errors(model, "8.2"))
    assert not any("outside" in e for e in errors(model, "8.6"))


def test_build_engine_audit_failure_is_one_line(tmp_path):
    # A graph that meets the model contract (build-engine checks that first) but holds a
    # data-dependent NonZero that TensorRT cannot build.
    from onnx_fixtures import make_blob_model

    path = make_blob_model(tmp_path / "bad.onnx")
    nz = onnx.load(str(path))
    nz.graph.node.append(helper.make_node("NonZero", ["image"], ["nz_y"], name="bad/NonZero"))
    onnx.save(nz, str(path))
    proc = subprocess.run(
        [sys.executable, "export/build_engine.py", "--onnx", str(path), "--out", str(tmp_path)],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "bad/NonZero" in lines[0] and "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.onnx"]
