"""The optional ModelOpt INT8 path (runs only where nvidia-modelopt[onnx] is installed: its own
venv, docs/PRECISION.md); elsewhere: the missing-dependency message."""

from __future__ import annotations

import pytest
from calib_helpers import danet_edge_fp32, synth_crops

from hmrt.calib.modelopt_path import modelopt_available, quantize_with_modelopt
from hmrt.runtime.errors import MissingDependencyError


def test_missing_modelopt_names_the_separate_venv(tmp_path):
    if modelopt_available():
        pytest.skip("nvidia-modelopt is installed here")
    with pytest.raises(MissingDependencyError, match=r"nvidia-modelopt.*PRECISION\.md"):
        quantize_with_modelopt(danet_edge_fp32(), tmp_path / "m.onnx", synth_crops()[:2], [])
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.skipif(not modelopt_available(), reason="nvidia-modelopt[onnx] not installed")
def test_modelopt_qdq_keeps_islands_float(tmp_path):
    import onnx

    from hmrt.calib.qdq_plan import make_plan
    from hmrt.runtime.graph_islands import island_of

    source = onnx.load(str(danet_edge_fp32()))
    plan = make_plan(source)
    out = quantize_with_modelopt(danet_edge_fp32(), tmp_path / "m.onnx", synth_crops(),
                                 plan.nodes_to_exclude)  # fmt: skip
    model = onnx.load(str(out))
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert qdq and not [n for n in qdq if island_of(n.name)]
