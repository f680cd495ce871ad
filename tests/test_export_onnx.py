"""ONNX export on a toy model with DaNet's tricky parts: rewrites, islands, metadata, parity."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from export_toy import toy_model

from hmrt.export.onnx_export import OUTPUT_ORDER, ExportOptions, export_model
from hmrt.export.parity import max_abs_diff, ort_outputs, torch_outputs

REPO = Path(__file__).resolve().parents[1]
CONTRACT_KEYS = (
    "hmrt.model", "hmrt.variant", "hmrt.input_size", "hmrt.mean", "hmrt.std", "hmrt.body_hash",
    "hmrt.precision", "hmrt.opset", "hmrt.version", "hmrt.roi_pool", "hmrt.crop_focal",
)  # fmt: skip


MATMUL_8_2 = ExportOptions(roi_pool="matmul", trt_version="8.2")


TOY_OUTPUTS = [n for n in OUTPUT_ORDER if n != "pose_joints"]
"""The toy has no pose network of its own: every contract output but the optional pose joints."""


@pytest.fixture(scope="module")
def toy():
    return toy_model()


@pytest.fixture(scope="module")
def exported(toy, tmp_path_factory):
    """The toy exported with grid pooling (TRT 10), gather and matmul pooling (TRT 8.2)."""
    out = tmp_path_factory.mktemp("toy_export")
    return {
        "grid": export_model(toy, out / "grid.onnx", "toy", "edge", ExportOptions()),
        "gather": export_model(
            toy, out / "gather.onnx", "toy", "edge", ExportOptions(trt_version="8.2")
        ),
        "matmul": export_model(toy, out / "matmul.onnx", "toy", "edge", MATMUL_8_2),
    }


def _random_theta(batch: int, rois: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    s = torch.rand(batch, rois, generator=g) * 0.9 + 0.1
    c = torch.rand(batch, rois, 2, generator=g) * 2.6 - 1.3  # some RoIs reach past the map
    z = torch.zeros_like(s)
    return torch.stack([torch.stack([s, z, c[..., 0]], -1), torch.stack([z, s, c[..., 1]], -1)], -2)


def test_gather_pool_equals_grid_pool_in_torch():
    from hmrt.export.rewrites.roi_pool_gather import GatherRoIPool
    from hmrt.train.models.layers import GridRoIPool

    grid = GridRoIPool(channels=5, height=14, width=12, out_size=9, num_rois=4)
    gather = GatherRoIPool.like(grid)
    features = torch.randn(3, 5, 14, 12, generator=torch.Generator().manual_seed(0))
    theta = _random_theta(3, 4, seed=1)
    a, b = grid(features, theta), gather(features, theta)
    assert a.shape == b.shape == (3, 20, 9, 9)
    assert float((a - b).abs().max()) < 1e-5


@pytest.mark.parametrize("height, width", [(14, 12), (16, 16)])
def test_matmul_pool_equals_grid_pool_in_torch(height, width):
    from hmrt.export.rewrites.roi_pool_matmul import MatMulRoIPool
    from hmrt.train.models.layers import GridRoIPool

    grid = GridRoIPool(channels=5, height=height, width=width, out_size=9, num_rois=4)
    matmul = MatMulRoIPool.like(grid)
    features = torch.randn(3, 5, height, width, generator=torch.Generator().manual_seed(0))
    theta = _random_theta(3, 4, seed=1)  # axis-aligned, some RoIs past the map's edge
    a, b = grid(features, theta), matmul(features, theta)
    assert a.shape == b.shape == (3, 20, 9, 9)
    assert float((a - b).abs().max()) < 1e-5


def test_contract_outputs_and_metadata(exported):
    for kind, result in exported.items():
        model = onnx.load(str(result.path))
        onnx.checker.check_model(model, full_check=True)
        assert [i.name for i in model.graph.input] == ["image"]
        assert [o.name for o in model.graph.output] == TOY_OUTPUTS
        for value in [*model.graph.input, *model.graph.output]:
            assert value.type.tensor_type.shape.dim[0].dim_param == "batch"
        meta = {p.key: p.value for p in model.metadata_props}
        assert set(CONTRACT_KEYS) <= set(meta)
        assert not [k for k in meta if k.startswith("hmrt.pose_joint")]  # no pose joints
        assert meta["hmrt.input_size"] == "64,64" and meta["hmrt.roi_pool"] == kind
        assert meta["hmrt.precision"] == "fp32" and meta["hmrt.crop_focal"] == "5000"
        assert meta["hmrt.mean"] == "0.485,0.456,0.406"
        from hmrt.runtime.model_info import parse_metadata  # the runtime's own reader

        info = parse_metadata(str(result.path), meta)
        assert info.input_size == (64, 64) and info.model == "toy" and info.crop_focal == 5000


def test_opset_and_pooling_follow_the_target(exported):
    grid = onnx.load(str(exported["grid"].path))
    gather = onnx.load(str(exported["gather"].path))
    assert grid.opset_import[0].version == 17 and gather.opset_import[0].version == 13
    assert any(n.op_type == "GridSample" for n in grid.graph.node)
    ops = {n.op_type for n in gather.graph.node}
    assert "GridSample" not in ops and "Gather" in ops
    assert exported["gather"].swapped == {"roi_pool": ("GridRoIPool", "GatherRoIPool")}
    matmul = onnx.load(str(exported["matmul"].path))
    assert matmul.opset_import[0].version == 13
    pool_ops = {
        n.op_type for n in matmul.graph.node if n.name in exported["matmul"].islands["roi_pool"]
    }
    assert "MatMul" in pool_ops and not pool_ops & {"GridSample", "Cast", "Floor"}  # no index math
    assert exported["matmul"].swapped == {"roi_pool": ("GridRoIPool", "MatMulRoIPool")}


def test_fp32_islands_come_from_the_declaration(toy, exported):
    from hmrt.train.models.layers import fp32_islands

    declared = set(fp32_islands(toy))
    assert declared == {"soft_argmax", "roi_pool", "sixd", "body"}
    for result in exported.values():
        assert set(result.islands) == declared
        model = onnx.load(str(result.path))
        ops = {
            q: {n.op_type for n in model.graph.node if n.name in result.islands[q]}
            for q in declared
        }
        assert {"Softmax", "MatMul"} <= ops["soft_argmax"]
        assert "MatMul" in ops["body"] and "Conv" not in ops["body"]
    assert "GridSample" in {
        n.op_type
        for n in onnx.load(str(exported["grid"].path)).graph.node
        if n.name in exported["grid"].islands["roi_pool"]
    }


@pytest.mark.parametrize("kind", ["grid", "gather", "matmul"])
@pytest.mark.parametrize("batch", [1, 4])
def test_ort_matches_torch(toy, exported, kind, batch):
    images = torch.randn(8, 3, 64, 64, generator=torch.Generator().manual_seed(3)).numpy()
    diff = max_abs_diff(
        torch_outputs(toy, images, batch), ort_outputs(exported[kind].path, images, batch)
    )
    assert set(diff) == set(TOY_OUTPUTS)
    assert diff["vertices"] <= 1e-4 and diff["joints3d"] <= 1e-4
    assert diff["joints2d"] <= 1e-3  # pixels


def test_static_batch_export(toy, tmp_path):
    result = export_model(toy, tmp_path / "b2.onnx", "toy", "edge", ExportOptions(batch=2))
    model = onnx.load(str(result.path))
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 2
    out = ort_outputs(result.path, np.zeros((2, 3, 64, 64), np.float32), 2)
    assert out["vertices"].shape == (2, 30, 3)


def test_failed_export_leaves_no_file(toy, tmp_path):
    from hmrt.export.audit import AuditError

    dest = tmp_path / "bad.onnx"
    with pytest.raises(AuditError, match="--roi-pool gather"):
        export_model(toy, dest, "toy", "edge", ExportOptions(roi_pool="grid", trt_version="8.2"))
    assert list(tmp_path.iterdir()) == []


def test_no_export_module_shadows_a_top_level_package():
    """``python export/build_engine.py`` puts export/ first on sys.path: names must not clash."""
    names = [p.stem for p in (REPO / "export").glob("*.py") if p.stem != "__init__"]
    names += [p.name for p in (REPO / "export").iterdir() if (p / "__init__.py").is_file()]
    clashes = []
    for name in names:
        spec = importlib.util.find_spec(name) if name not in sys.modules else None
        if (
            name in sys.builtin_module_names
            or name in sys.stdlib_module_names
            or (spec is not None and "export" not in str(spec.origin))
        ):
            clashes.append(name)
    assert not clashes


def _hmrt(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hmrt", "export", *args], capture_output=True, text=True, cwd=cwd
    )


def test_cli_refuses_a_silent_random_model(tmp_path):
    proc = _hmrt("--model", "danet", "--variant", "paper", cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--random-init" in lines[0] and "--checkpoint" in lines[0]
    assert list(tmp_path.iterdir()) == []
    proc = _hmrt("--checkpoint", str(tmp_path / "x.pt"), "--random-init", cwd=tmp_path)
    assert proc.returncode == 2 and "exclude" in proc.stderr
