"""``hmrt export --format triton``: a model repository whose config parses as Triton's proto."""

from __future__ import annotations

import subprocess
import sys

import onnx
import pytest
from export_toy import toy_model

from hmrt.export.onnx_export import ExportOptions, export_model
from hmrt.export.triton_repo import write_triton_repo


def _parse(text: str):
    model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")
    from google.protobuf import text_format

    return text_format.Parse(text, model_config_pb2.ModelConfig())


def test_repository_layout_and_config(tmp_path):
    result = export_model(toy_model(), tmp_path / "toy.onnx", "toy", "edge", ExportOptions())
    model_dir = write_triton_repo(tmp_path / "repo", result.path, "toy_edge", max_batch_size=8)
    assert (model_dir / "1" / "model.onnx").read_bytes() == result.path.read_bytes()
    cfg = _parse((model_dir / "config.pbtxt").read_text())
    assert cfg.name == "toy_edge" and cfg.platform == "onnxruntime_onnx"
    assert cfg.max_batch_size == 8 and cfg.HasField("dynamic_batching")
    assert [(i.name, list(i.dims)) for i in cfg.input] == [("image", [3, 64, 64])]
    outputs = {o.name: list(o.dims) for o in cfg.output}
    assert outputs == {"vertices": [30, 3], "joints3d": [4, 3], "joints2d": [4, 2], "cam": [3],
                       "rotmats": [24, 3, 3], "betas": [10]}  # fmt: skip
    from tritonclient.grpc import model_config_pb2

    assert all(o.data_type == model_config_pb2.TYPE_FP32 for o in cfg.output)
    # An engine instead of the ONNX: platform tensorrt_plan, same dims.
    engine = tmp_path / "toy.engine"
    engine.write_bytes(b"not a real plan")
    plan_dir = write_triton_repo(tmp_path / "repo", result.path, "toy_trt", engine=engine)
    assert _parse((plan_dir / "config.pbtxt").read_text()).platform == "tensorrt_plan"
    assert (plan_dir / "1" / "model.plan").is_file()


def test_static_batch_graph_is_refused(tmp_path):
    result = export_model(toy_model(), tmp_path / "b1.onnx", "toy", "edge", ExportOptions(batch=1))
    assert onnx.load(str(result.path)).graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    from hmrt.runtime.errors import InputError

    with pytest.raises(InputError, match="fixed batch"):
        write_triton_repo(tmp_path / "repo", result.path, "b1")
    assert not (tmp_path / "repo" / "b1").exists()


def test_cli_without_weights_writes_nothing(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "hmrt", "export", "--model", "danet", "--variant", "paper",
         "--format", "triton", "--out", str(tmp_path / "repo")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 2 and not (tmp_path / "repo").exists()
