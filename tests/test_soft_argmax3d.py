"""HEMlets' volumetric soft-argmax (SoftArgmax3d): equal to the official algorithm in torch and in
ONNX Runtime, FP32 in the FP16 graph, free of Q/DQ in the INT8 graph, kept off the DLA."""

from __future__ import annotations

import io
import math
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto
from torch import nn

from hmrt.export.audit import audit
from hmrt.export.dla import DLA_MAX_DIM, dla_gpu_nodes, gpu_layer_reason, size_reasons
from hmrt.export.fp16_graph import convert_to_fp16
from hmrt.export.islands import declared_islands, tag_islands
from hmrt.export.onnx_export import simplify, torch_to_onnx
from hmrt.runtime.graph_islands import island_of
from hmrt.train.models.layers import SoftArgmax3d
from hmrt.train.models.layers.soft_argmax import soft_argmax3d_reference

REPO = Path(__file__).resolve().parents[1]
J, D, H, W = 18, 64, 64, 64  # the official head: 18 joints x 64^3 voxels
TOL = 1e-4  # normalised units (1 = the crop width: 1e-4 is 0.03 px of a 256 px crop)
FORMS = ("separable", "matmul")


def _volumes(kind: str, n: int, joints=J, depth=D, height=H, width=W, seed=0) -> torch.Tensor:
    """Logits ``(n, J*D, H, W)``: ``sharp`` (a Gaussian peak of 20 with sigma 2 bins at a random
    sub-voxel position, plus noise), ``diffuse`` (noise of std 0.5), ``flat`` (zeros)."""
    g = torch.Generator().manual_seed(seed)
    shape = (n, joints, depth, height, width)
    if kind == "flat":
        return torch.zeros(n, joints * depth, height, width)
    noise = torch.randn(*shape, generator=g)
    if kind == "diffuse":
        return (0.5 * noise).reshape(n, joints * depth, height, width)
    axes = [torch.arange(s, dtype=torch.float32) for s in (depth, height, width)]
    zz, yy, xx = torch.meshgrid(*axes, indexing="ij")
    centre = torch.rand(n, joints, 3, generator=g) * torch.tensor(
        [depth - 1.0, height - 1.0, width - 1.0]
    )
    c = centre[..., None, None, None]
    d2 = (
        (zz - c[..., 0, :, :, :]) ** 2
        + (yy - c[..., 1, :, :, :]) ** 2
        + (xx - c[..., 2, :, :, :]) ** 2
    )
    return (20.0 * torch.exp(-d2 / 8.0) + 0.5 * noise).reshape(n, joints * depth, height, width)


def _reference(logits: torch.Tensor, joints=J, depth=D, height=H, width=W) -> np.ndarray:
    """The official algorithm in float64."""
    return soft_argmax3d_reference(logits.double(), joints, depth, height, width).numpy()


def _export_head(form: str) -> bytes:
    """SoftArgmax3d alone, TorchScript exporter at opset 17, dynamic batch (no island markers:
    an island may not read a graph input)."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            SoftArgmax3d(J, D, H, W, form=form).eval(),
            (torch.zeros(2, J * D, H, W),),
            buf,
            dynamo=False,
            opset_version=17,
            input_names=["logits"],
            output_names=["xyz"],
            dynamic_axes={"logits": {0: "batch"}, "xyz": {0: "batch"}},
        )
    return buf.getvalue()


def _session(model: bytes | onnx.ModelProto) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    data = model if isinstance(model, bytes) else model.SerializeToString()
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


# -- the layer in torch ------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["sharp", "diffuse", "flat"])
def test_torch_matches_the_official_algorithm(kind):
    logits = _volumes(kind, 4)
    ref = _reference(logits)
    sep = SoftArgmax3d()(logits).numpy()
    assert sep.shape == (4, J, 3) and sep.dtype == np.float32
    assert np.abs(sep - ref).max() < TOL
    # The MatMul form is the same function; torch's CPU GEMV over K = 262,144 rounds more (up to
    # 3e-4 measured), ONNX Runtime's does not (test_onnx_runtime_matches_...).
    assert np.abs(SoftArgmax3d(form="matmul")(logits).numpy() - ref).max() < 1e-3
    assert np.abs(ref).max() <= 0.5 + 1e-12


@pytest.mark.parametrize("form", FORMS)
def test_layout_x_from_width_y_from_height_z_from_the_depth_sub_index(form):
    """A near one-hot voxel per joint, with D != H != W: channel = joint*D + depth."""
    joints, depth, height, width = 3, 8, 12, 16
    logits = torch.full((2, joints * depth, height, width), -60.0)
    picks = [(0, 1, 2, 3), (1, 7, 0, 15), (2, 4, 11, 0)]
    for j, d, h, w in picks:
        logits[:, j * depth + d, h, w] = 60.0
    out = SoftArgmax3d(joints, depth, height, width, form=form)(logits)
    want = torch.tensor(
        [[w / (width - 1), h / (height - 1), d / (depth - 1)] for _, d, h, w in picks]
    )
    assert torch.allclose(out, (want - 0.5).expand(2, -1, -1), atol=1e-6)
    ref = _reference(logits, joints, depth, height, width)
    assert np.abs(out.numpy() - ref).max() < 1e-6


def test_dis_map_is_the_official_buffer_and_loads_strictly():
    layer = SoftArgmax3d(18, 64, 64, 64)
    assert list(layer.state_dict()) == ["dis_map"]  # the official volume_reg.* keys
    assert layer.dis_map.shape == (1, 18, 64)
    assert torch.allclose(layer.dis_map[0, 5], torch.arange(64) / 63.0)
    official = {"dis_map": torch.arange(64, dtype=torch.float32).div(63).repeat(1, 18, 1)}
    layer.load_state_dict(official, strict=True)
    edge = SoftArgmax3d(18, 32, 64, 64)
    assert edge.dis_map.shape == (1, 18, 32) and float(edge.dis_map[0, 0, -1]) == 1.0
    with pytest.raises(ValueError, match="form"):
        SoftArgmax3d(form="softmax")


@pytest.mark.parametrize("form", FORMS)
def test_gradient_matches_the_official_algorithm(form):
    joints, depth, height, width = 2, 6, 5, 7
    base = _volumes("sharp", 2, joints, depth, height, width, seed=3).double()
    weights = torch.randn(2, joints, 3, dtype=torch.float64)
    grads = []
    for fn in (
        lambda x: SoftArgmax3d(joints, depth, height, width, form=form)(x),
        lambda x: soft_argmax3d_reference(x, joints, depth, height, width),
    ):
        x = base.clone().requires_grad_(True)
        (fn(x) * weights).sum().backward()
        grads.append(x.grad)
    assert torch.allclose(grads[0], grads[1], atol=1e-10)


def test_fp32_under_autocast():
    logits = _volumes("diffuse", 1, 2, 16, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = SoftArgmax3d(2, 16, 16, 16)(logits.bfloat16())
    assert out.dtype == torch.float32
    ref = _reference(logits.bfloat16().float(), 2, 16, 16, 16)
    assert np.abs(out.numpy() - ref).max() < 1e-6


# -- the exported graph ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def head_graphs():
    return {form: _export_head(form) for form in FORMS}


@pytest.mark.parametrize("form", FORMS)
def test_graph_is_static_and_never_builds_the_normalised_volume(head_graphs, form):
    model = onnx.shape_inference.infer_shapes(onnx.load_from_string(head_graphs[form]))
    g = model.graph
    ops = [n.op_type for n in g.node]
    assert {"Shape", "Gather", "ConstantOfShape", "Expand", "Tile", "Softmax"}.isdisjoint(ops)
    consts = {o for n in g.node if n.op_type == "Constant" for o in n.output}
    shapes = {
        v.name: [d.dim_value or None for d in v.type.tensor_type.shape.dim]
        for v in [*g.value_info, *g.input, *g.output]
    }
    for node in g.node:
        if node.op_type == "Reshape":
            assert node.input[1] in consts  # constant target shape, batch -1
        for out in node.output:
            dims = shapes.get(out, [])
            assert len(dims) <= (4 if form == "separable" else 3), (node.name, dims)
    (div,) = [n for n in g.node if n.op_type == "Div"]
    big = J * D * H * W
    assert all(math.prod(d or 1 for d in shapes[i]) < big // 1000 for i in div.input)
    assert ops.count("Exp") == 1 and ops.count("ReduceMax") == 1


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("kind", ["sharp", "diffuse"])
@pytest.mark.parametrize("batch", [1, 4])
def test_onnx_runtime_matches_the_official_algorithm(head_graphs, form, kind, batch):
    logits = _volumes(kind, batch, seed=batch)
    (out,) = _session(head_graphs[form]).run(None, {"logits": logits.numpy()})
    assert out.shape == (batch, J, 3)
    assert np.abs(out - _reference(logits)).max() < TOL


# -- FP16: the hazard and hmrt's FP16 graph ----------------------------------------------------
def _naive_fp16_head(logits: torch.Tensor) -> np.ndarray:
    """The official head computed the naive FP16 way: every exp, sum and product in float16
    (what an FP16 kernel without FP32 accumulation does; torch's CPU half kernels accumulate in
    float32 and hide it)."""
    n = logits.shape[0]
    x = logits.numpy().astype(np.float16).reshape(n, J, -1)
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(x - x.max(-1, keepdims=True))
        z = e.sum(-1, dtype=np.float16, keepdims=True)  # the partition sum
        p = (e / z).reshape(n, J, D, H, W)
        grid = (np.arange(64) / 63).astype(np.float16)
        marginals = [p.sum(axes, dtype=np.float16) for axes in ((2, 3), (2, 4), (3, 4))]
        xyz = [(m * grid).sum(-1, dtype=np.float16) for m in marginals]
    return np.stack(xyz, -1).astype(np.float64) - 0.5


def test_naive_fp16_head_overflows_on_flat_and_drifts_on_diffuse_volumes():
    flat, diffuse = _volumes("flat", 1), _volumes("diffuse", 1, seed=1)
    x = flat.numpy().astype(np.float16).reshape(1, J, -1)
    with np.errstate(over="ignore"):
        assert np.isinf(np.exp(x - x.max()).sum(-1, dtype=np.float16)).all()  # 262,144 > 65,504
    # Every joint of a flat volume collapses to the crop corner (-0.5) instead of the centre.
    assert np.abs(_naive_fp16_head(flat) - _reference(flat)).max() == pytest.approx(0.5)
    # A diffuse volume's sum stays just under 65,504; the FP16 marginals are off by > 0.02
    # (more than 5 px of a 256 px crop), 200x the tolerance.
    assert np.abs(_naive_fp16_head(diffuse) - _reference(diffuse)).max() > 200 * TOL


class VolumeToy(nn.Module):
    """A tiny volumetric-head model: conv -> ReLU -> 1x1 conv to J*D channels -> SoftArgmax3d."""

    def __init__(self, joints=2, depth=D, height=H, width=W, form="separable", scale=1.0):
        super().__init__()
        g = torch.Generator().manual_seed(7)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.to_volume = nn.Conv2d(8, joints * depth, 1)
        with torch.no_grad():
            for conv in (self.conv, self.to_volume):
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * scale * 0.3)
                conv.bias.zero_()
        self.head = SoftArgmax3d(joints, depth, height, width, form=form)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"joints3d": self.head(self.to_volume(torch.relu(self.conv(image))))}


def _toy_graph(toy: nn.Module) -> onnx.ModelProto:
    """hmrt's export steps (island markers, TorchScript opset 17, tagging, onnxslim)."""
    graph = torch_to_onnx(toy.eval(), ["joints3d"], (H, W), 17, None, declared_islands(toy))
    tag_islands(graph)
    return simplify(graph)


@pytest.fixture(scope="module")
def toy_graphs():
    out = {}
    for form in FORMS:
        toy = VolumeToy(form=form)
        fp32 = _toy_graph(toy)
        out[form] = SimpleNamespace(toy=toy, fp32=fp32, fp16=convert_to_fp16(fp32))
    return out


def _types(model: onnx.ModelProto) -> dict[str, int]:
    g = onnx.shape_inference.infer_shapes(model).graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*g.value_info, *g.input, *g.output]}
    types.update({t.name: t.data_type for t in g.initializer})
    return types


@pytest.mark.parametrize("form", FORMS)
def test_fp16_graph_keeps_the_head_in_float32_behind_a_cast(toy_graphs, form):
    model = toy_graphs[form].fp16
    types = _types(model)
    producer = {o: n for n in model.graph.node for o in n.output}
    head = [n for n in model.graph.node if island_of(n.name) == "head"]
    assert {n.op_type for n in head} >= {"Reshape", "ReduceMax", "Sub", "Exp", "Div"}
    for node in head:
        for t in [*node.input, *node.output]:
            assert types.get(t) in (TensorProto.FLOAT, TensorProto.INT64, None), (node.name, t)
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert {types[n.output[0]] for n in convs} == {TensorProto.FLOAT16}
    # Every node after the last conv is a tagged head node: none was renamed by onnxslim (its
    # ReduceSum + Unsqueeze fusion drops the tag, which would put the moment sums in FP16).
    tail = model.graph.node[[n.name for n in model.graph.node].index(convs[-1].name) + 1 :]
    untagged = [n.name for n in tail if n.op_type not in ("Constant", "Cast")]
    assert [n for n in untagged if island_of(n) != "head"] == []
    casts = [n for n in model.graph.node if n.op_type == "Cast"]
    assert len(casts) == 2  # image -> FP16, logits -> FP32; nothing inside the head
    # The head's input: the FP16 logits cast to float32 before the reshape.
    (entry,) = [
        n for n in head if n.op_type == "Reshape" and producer[n.input[0]].op_type == "Cast"
    ]
    cast = producer[entry.input[0]]
    assert cast.attribute[0].i == TensorProto.FLOAT and types[cast.input[0]] == TensorProto.FLOAT16


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("scale", [0.0, 0.3, 1.0], ids=["flat", "diffuse", "peaked"])
def test_fp16_graph_stays_finite_and_accurate(toy_graphs, form, scale):
    """scale 0: every logit 0 (a flat volume, the partition sum 262,144 > FP16 max)."""
    graphs = toy_graphs[form]
    image = torch.randn(4, 3, H, W, generator=torch.Generator().manual_seed(11)) * scale
    toy = graphs.toy
    with torch.no_grad():
        logits = toy.to_volume(torch.relu(toy.conv(image)))
    want = _reference(logits, joints=2)  # the official algorithm in float64
    (out,) = _session(graphs.fp16).run(None, {"image": image.numpy()})
    assert out.dtype == np.float32 and np.isfinite(out).all()
    assert np.abs(out - want).max() < 1e-3  # only the FP16 convolutions before the head round
    (fp32,) = _session(graphs.fp32).run(None, {"image": image.numpy()})
    assert np.abs(fp32 - want).max() < TOL


# -- INT8: no Q/DQ inside the head -------------------------------------------------------------
@pytest.mark.parametrize("form", FORMS)
def test_int8_qdq_graph_puts_nothing_inside_the_head(toy_graphs, tmp_path, form):
    pytest.importorskip("onnxruntime.quantization")
    from hmrt.calib.qdq import QuantizeOptions, quantize_to_qdq

    src = tmp_path / "toy_fp32.onnx"
    onnx.save(toy_graphs[form].fp32, str(src))
    images = np.random.default_rng(0).standard_normal((8, 3, H, W)).astype(np.float32)
    # quantize_heads: the 1x1 conv right before the head is quantized too (the strictest case).
    opts = QuantizeOptions(batch=4, quantize_heads=True)
    result = quantize_to_qdq(src, tmp_path / "toy_int8.onnx", images, opts, progress=False)
    model = onnx.load(str(result.path))
    nodes = model.graph.node
    qdq = [n for n in nodes if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert qdq and len(result.quantized_nodes) >= 2  # both convolutions are int8
    assert not [n.name for n in qdq if island_of(n.name) is not None]
    producer = {o: n for n in nodes for o in n.output}
    head = [n for n in nodes if island_of(n.name) == "head"]
    assert head and set(result.plan.islands) == {n.name for n in head}
    for node in head:
        srcs = [producer[i].op_type for i in node.input if i in producer]
        assert "DequantizeLinear" not in srcs, node.name
    if form == "matmul":  # the constant-weight MatMul inside the head stays float
        (mm,) = [n for n in head if n.op_type == "MatMul"]
        assert island_of(mm.name) and mm.name not in result.quantized_nodes


# -- DLA: the audit and the layer placement (no TensorRT needed) ------------------------------
@pytest.mark.parametrize("form", FORMS)
def test_audit_reports_the_head_cannot_run_on_dla(toy_graphs, form):
    model = toy_graphs[form].fp32
    assert audit(model, "10").warnings == []  # a GPU build has nothing to say about DLA
    report = audit(model, "10", dla=True)
    assert report.errors == []
    lines = report.warnings
    assert any("fp32island[head]" in line and "FP16/INT8 only" in line for line in lines)
    voxels = D * H * W  # 262,144
    if form == "separable":  # (N, J, D*H, W): no dimension over 8192, the max is over D*H*W
        (line,) = [x for x in lines if "cannot run on DLA" in x]
        assert f"ReduceMax): cannot run on DLA: ReduceMax over {voxels} elements" in line
    else:  # (N, J, D*H*W)
        assert any(f"has a dimension of {voxels}" in line for line in lines)
        assert any(f"ReduceMax over {voxels}" in line for line in lines)
    assert all("cannot run on DLA" in x or "fp32island[" in x for x in lines)
    reasons = size_reasons(model)
    assert reasons and all(island_of(name) == "head" for name in reasons)


def test_dla_rules_on_small_graphs():
    from onnx import helper

    def softmax(shape, axis):
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)
        node = helper.make_node("Softmax", ["x"], ["y"], name="sm", axis=axis)
        graph = helper.make_graph([node], "g", [x], [y])
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])

    assert size_reasons(softmax([1, 1, 8192], -1)) == {}
    assert "8192" in size_reasons(softmax([1, 1, 8200], -1))["sm"]
    assert size_reasons(softmax([1, 4, 1000], -1)) == {}
    assert "at most 1024" in size_reasons(softmax([1, 4, 2048], 2))["sm"]
    assert DLA_MAX_DIM == 8192


@pytest.mark.parametrize("form", FORMS)
def test_dla_layer_selection_on_the_real_graph(toy_graphs, form):
    """TensorRT names layers after ONNX nodes (a split node keeps the name as a prefix): the head's
    layers go to the GPU, the convolutions stay on the DLA."""
    model = toy_graphs[form].fp32
    gpu = dla_gpu_nodes(model)
    names = [n.name for n in model.graph.node if n.op_type != "Constant"]
    head = [n for n in names if island_of(n) == "head"]
    assert head and set(head) <= set(gpu)
    convs = [n.name for n in model.graph.node if n.op_type == "Conv"]
    assert len(convs) == 2 and not set(convs) & set(gpu)
    assert all(gpu_layer_reason(n, gpu) for n in head)
    assert all(gpu_layer_reason(n + "_1", gpu) for n in head)  # a node split into layers
    assert all(gpu_layer_reason(n, gpu) is None for n in convs)


def test_place_dla_layers_sets_the_gpu_device_explicitly(toy_graphs):
    """The builder-side loop with recording stand-ins for TensorRT's network and config (the
    real calls are checked only by the trt-marked test below, on a machine with a DLA)."""
    from hmrt.export.trt_build import place_dla_layers

    model = toy_graphs["separable"].fp32
    layers = [SimpleNamespace(name=n.name) for n in model.graph.node if n.op_type != "Constant"]
    refused = next(layer.name for layer in layers if layer.name.endswith("Relu"))
    network = SimpleNamespace(num_layers=len(layers), get_layer=lambda i: layers[i])
    calls: list[tuple[str, str]] = []
    config = SimpleNamespace(
        can_run_on_DLA=lambda layer: layer.name != refused,
        set_device_type=lambda layer, device: calls.append((layer.name, device)),
    )
    trt = SimpleNamespace(DeviceType=SimpleNamespace(GPU="GPU", DLA="DLA"))
    placed = place_dla_layers(trt, network, config, dla_gpu_nodes(model))
    head = {layer.name for layer in layers if island_of(layer.name) == "head"}
    assert set(placed) == head | {refused}
    assert calls == [(name, "GPU") for name in placed]


def test_build_engine_dla_prints_what_stays_on_the_gpu(toy_graphs, tmp_path):
    """Without TensorRT, ``build_engine.py --dla 0`` audits, lists the GPU nodes, then stops."""
    import subprocess

    if "tensorrt" in sys.modules or _full_tensorrt():
        pytest.skip("full TensorRT installed")
    from export_toy import toy_model

    from hmrt.export.onnx_export import ExportOptions, export_model

    src = export_model(toy_model(), tmp_path / "toy.onnx", "toy", "edge", ExportOptions()).path
    proc = subprocess.run(
        [sys.executable, str(REPO / "export" / "build_engine.py"), "--onnx", str(src), "--fp16",
         "--dla", "0", "--out", str(tmp_path / "engines")],
        capture_output=True, text=True, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    dla = [line for line in lines if line.startswith("hmrt build-engine: DLA: ")]
    assert any("fp32island[" in line and "FP16/INT8 only" in line for line in dla)
    assert "TensorRT is not installed" in lines[-1]


def _full_tensorrt() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.trt
def test_dla_build_keeps_the_head_on_the_gpu(toy_graphs, tmp_path):
    """On a machine with a DLA core (Jetson AGX/NX Orin): build, and the head layers are GPU."""
    import tensorrt as trt

    from hmrt.export.batch_profile import BatchProfile
    from hmrt.export.precision_plan import features_of, plan_precision
    from hmrt.export.trt_build import BuildSettings, build_plan

    if trt.Builder(trt.Logger(trt.Logger.WARNING)).num_DLA_cores == 0:
        pytest.skip("no DLA core on this device")
    model = toy_graphs["separable"].fp32
    path = tmp_path / "toy.onnx"
    onnx.save(model, str(path))
    plan = plan_precision(model, "fp16", features_of(trt))
    settings = BuildSettings(dla_core=0, gpu_nodes=dla_gpu_nodes(model))
    outcome = build_plan(trt, path, plan, BatchProfile(1, 1, 1), settings)
    assert outcome.plan
    assert any(island_of(name) == "head" for name in outcome.gpu_layers)
    reduces = [n.name for n in model.graph.node if n.op_type.startswith("Reduce")]
    assert set(reduces) <= set(outcome.gpu_layers)
