"""UV layers (DecoMR/BoBW): scatter-mean and UV-to-vertex sampling, their deployment forms,
their ONNX exports (opset 17, ONNX Runtime) and the TensorRT audit verdicts."""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hmrt.export.audit import AuditError, audit
from hmrt.export.rewrites import apply_rewrites
from hmrt.export.rewrites.uv_sample_gather import GatherUVToVertices
from hmrt.export.rewrites.uv_scatter_add import ScatterAddUVScatterMean
from hmrt.export.rewrites.uv_scatter_matmul import MatMulUVScatterMean
from hmrt.runtime.errors import InputError
from hmrt.train.models.layers import UVScatterMean, UVToVertices, UVToVerticesGrid, build_uv_tables
from hmrt.train.models.layers.uv_sample import build_uv_sampling_table, uv_to_pixel

ort = pytest.importorskip("onnxruntime")

SCATTER_FORMS = {
    "add": ScatterAddUVScatterMean.like,
    "onehot": lambda m: MatMulUVScatterMean.like(m, "onehot"),
    "separable": lambda m: MatMulUVScatterMean.like(m, "separable"),
    "onehot-blocks": lambda m: MatMulUVScatterMean.like(m, "onehot", blocks=4),
}


def scatter_inputs(n=2, c=6, h=20, w=24, seed=0):
    """Features, UV quantised onto a few texels (many duplicates), mask with ~40% background."""
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(n, c, h, w, generator=g) * 3.0
    uv = torch.randint(0, 9, (n, 2, h, w), generator=g).float() / 8.0 * 0.6 + 0.2
    uv[:, :, :2] = torch.rand(n, 2, 2, w, generator=g) * 1.4 - 0.2  # some outside [0, 1]
    mask = torch.rand(n, 1, h, w, generator=g)
    return features, uv, mask


def reference_scatter_mean(features, uv, mask, s, threshold=0.5, align_corners=False):
    """Plain loop over pixels: the official warp_feature semantics in hmrt's orientation."""
    n, c, h, w = features.shape
    total = np.zeros((n, c, s, s))
    count = np.zeros((n, s, s))
    for b in range(n):
        for y in range(h):
            for x in range(w):
                if mask[b, 0, y, x] <= threshold:
                    continue
                u, v = float(uv[b, 0, y, x]), 1.0 - float(uv[b, 1, y, x])
                if align_corners:  # official: round(uv * (S - 1))
                    col, row = np.round(np.float32(u) * (s - 1)), np.round(np.float32(v) * (s - 1))
                else:
                    col, row = np.floor(np.float32(u) * s), np.floor(np.float32(v) * s)
                col, row = int(np.clip(col, 0, s - 1)), int(np.clip(row, 0, s - 1))
                total[b, :, row, col] += features[b, :, y, x].double().numpy()
                count[b, row, col] += 1
    return total / np.maximum(count, 1)[:, None], count


def run_onnx(module: nn.Module, inputs: tuple, opset: int = 17) -> tuple[list, onnx.ModelProto]:
    """Export with the project's exporter settings (TorchScript, pinned opset); run in ORT."""
    buf = io.BytesIO()
    names = [f"in{i}" for i in range(len(inputs))]
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(), inputs, buf, dynamo=False, opset_version=opset, input_names=names,
            dynamic_axes={k: {0: "batch"} for k in names},
        )  # fmt: skip
    graph = onnx.load_from_string(buf.getvalue())
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    feeds = {k: v.numpy() for k, v in zip(names, inputs)}
    # The batch stays dynamic: a batch of 3 (not the traced 2) gives torch's result too.
    three = tuple(torch.cat([v, v[:1]]) if v.dtype.is_floating_point else v for v in inputs)
    if all(v.shape[0] == 3 for v in three):
        (got,) = session.run(None, {k: v.numpy() for k, v in zip(names, three)})[:1]
        with torch.no_grad():
            want = module(*three).numpy()
        assert np.abs(got - want).max() <= 1e-5 * max(1.0, np.abs(want).max())
    return session.run(None, feeds), graph


def op_types(graph: onnx.ModelProto) -> set[str]:
    return {n.op_type for n in graph.graph.node}


@pytest.mark.parametrize("align_corners", [False, True])
def test_scatter_mean_matches_reference_loop(align_corners):
    features, uv, mask = scatter_inputs()
    layer = UVScatterMean(8, align_corners=align_corners, occupancy=True)
    out = layer(features, uv, mask)
    ref, count = reference_scatter_mean(features, uv, mask, 8, align_corners=align_corners)
    assert out.shape == (2, 7, 8, 8)
    assert count.max() > 3 and (count == 0).any()  # duplicates and empty texels both occur
    np.testing.assert_allclose(out[:, :-1].numpy(), ref, atol=1e-5)
    np.testing.assert_array_equal(out[:, -1].numpy(), count > 0)


def test_scatter_orientation_and_gradients():
    """u -> column, v -> row with the head (v = 1) on row 0; gradient reaches features only."""
    layer = UVScatterMean(4)
    features = torch.ones(1, 1, 1, 2, requires_grad=True)
    uv = torch.tensor([[0.9, 0.1], [0.95, 0.1]]).reshape(1, 2, 1, 2)  # (u, v) = (.9,.95), (.1,.1)
    out = layer(features, uv, torch.ones(1, 1, 1, 2))
    assert out[0, 0, 0, 3] == 1 and out[0, 0, 3, 0] == 1 and out.sum() == 2
    out.sum().backward()
    assert torch.equal(features.grad, torch.ones(1, 1, 1, 2))


@pytest.mark.parametrize("form", sorted(SCATTER_FORMS))
@pytest.mark.parametrize("align_corners", [False, True])
def test_scatter_forms_equal_training_form(form, align_corners):
    features, uv, mask = scatter_inputs(seed=1)
    train = UVScatterMean(8, align_corners=align_corners, occupancy=True)
    deploy = SCATTER_FORMS[form](train)
    torch.testing.assert_close(deploy(features, uv, mask), train(features, uv, mask))


def test_scatter_add_chunks_past_texel_count():
    """20x24 = 480 pixels into 8x8 = 64 texels: the add form splits into 8 scatters."""
    features, uv, mask = scatter_inputs(seed=2)
    train = UVScatterMean(8)
    _, graph = run_onnx(ScatterAddUVScatterMean.like(train), (features, uv, mask))
    scatters = [n for n in graph.graph.node if n.op_type == "ScatterElements"]
    assert len(scatters) == 8
    assert not [f for f in audit(graph, "10").findings if f.op == "ScatterElements"]
    # The training form scatters all 480 at once: the audit warns (NVIDIA/TensorRT#3650).
    from hmrt.export.onnx_export import simplify

    graph = simplify(run_onnx(train, (features, uv, mask))[1])  # as export_model audits it
    (finding,) = [f for f in audit(graph, "10").findings if f.op == "ScatterElements"]
    assert finding.level == "warning" and "480 indices into 64" in finding.message


@pytest.mark.parametrize("form", ["add", "onehot", "separable"])
def test_scatter_forms_onnx_match_torch(form):
    """Opset 17, ONNX Runtime vs torch: max error <= 1e-5 of the feature scale; static ops."""
    features, uv, mask = scatter_inputs(n=2, c=5, h=14, w=14, seed=3)
    train = UVScatterMean(16, occupancy=True)
    (got,), graph = run_onnx(SCATTER_FORMS[form](train), (features, uv, mask))
    want = train(features, uv, mask).numpy()
    assert np.abs(got - want).max() <= 1e-5 * features.abs().max().item()
    ops = op_types(graph)
    assert not ops & {"NonZero", "ScatterND", "GridSample"}
    if form == "add":
        (scatter,) = [n for n in graph.graph.node if n.op_type == "ScatterElements"]
        assert onnx.helper.get_attribute_value(scatter.attribute[-1]) == b"add"
    else:
        assert "MatMul" in ops and not any(op.startswith("Scatter") for op in ops)


def test_naive_scatter_export_is_silently_wrong():
    """Why the rewrite exists: the official index_add_ exports as ScatterElements without a
    reduction (opset 17, TorchScript exporter), so duplicate texels overwrite instead of adding."""

    class NaiveScatterSum(nn.Module):
        def forward(self, src: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
            out = src.new_zeros(64, src.shape[1])
            return out.index_add_(0, index, src)

    src = torch.randn(200, 3)
    index = torch.randint(0, 64, (200,))  # 200 pixels into 64 texels: duplicates everywhere
    (got,), graph = run_onnx(NaiveScatterSum(), (src, index))
    (scatter,) = [n for n in graph.graph.node if n.op_type == "ScatterElements"]
    assert not [a for a in scatter.attribute if a.name == "reduction"]
    assert np.abs(got - NaiveScatterSum()(src, index).numpy()).max() > 0.5


def test_scatter_fp16_has_no_nan_on_empty_texels():
    """Half inputs (cast into the FP32 island) and the FP16 graph: empty texels are exactly 0."""
    from hmrt.export.fp16_graph import convert_to_fp16
    from hmrt.export.islands import declared_islands, marked_islands, tag_islands

    features, uv, mask = scatter_inputs(seed=4)
    layer = UVScatterMean(32)
    out = layer(features.half(), uv.half(), mask.half())
    assert out.dtype == torch.float32 and torch.isfinite(out).all()

    class Net(nn.Module):  # an FP16 conv before the island, like a CNet decoder
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(6, 6, 1)
            self.scatter = ScatterAddUVScatterMean(32)

        def forward(self, f, t, m):
            return self.scatter(self.conv(f), t, m)

    net = Net().eval()
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad(), marked_islands(net, declared_islands(net)):
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (features, uv, mask), buf, dynamo=False, opset_version=17)
    graph = onnx.load_from_string(buf.getvalue())
    tag_islands(graph)
    half = convert_to_fp16(graph)
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in half.graph.initializer)
    session = ort.InferenceSession(half.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = dict(zip([i.name for i in session.get_inputs()], (features, uv, mask)))
    (got,) = session.run(None, {k: v.numpy() for k, v in feeds.items()})
    want = net(features, uv, mask).detach().numpy()
    assert np.isfinite(got).all() and (got == 0).any()
    np.testing.assert_array_equal(got == 0, want == 0)
    assert np.abs(got - want).max() < 1e-2 * np.abs(want).max()


@pytest.fixture(scope="module")
def tables128():
    return build_uv_tables(None, 128)


@pytest.fixture(scope="module")
def tables64():
    return build_uv_tables(None, 64)


def test_tables_reproduce_template(tables128, tables64):
    """The bundled body's v_template read back from its own T-pose location map."""
    from hmrt.runtime.body.model import BodyModel

    template = BodyModel().v_template
    errors = {}
    for tables in (tables128, tables64):
        verts = UVToVertices(tables)(torch.tensor(tables.ref_map)[None])[0].numpy()
        errors[tables.uv_size] = np.linalg.norm(verts - template, axis=1)
    # Measured: 128: mean 4.7 mm, median 2.2 mm, max 35 mm (hands); 64: mean 11.7 mm, max 83 mm.
    assert errors[128].mean() < 6e-3 and errors[128].max() < 0.045
    assert errors[64].mean() < 15e-3 and errors[64].max() < 0.1
    assert tables128.index.shape == (13348, tables128.weight.shape[1])
    np.testing.assert_allclose(tables128.weight.sum(1), 1.0, atol=1e-5)
    assert build_uv_tables(None, 128) is tables128 and not tables128.index.flags.writeable


def test_sampling_forms_equal(tables128):
    """Training table, gather rewrite and GridSample form agree on a random map."""
    loc = torch.randn(2, 3, 128, 128)
    train = UVToVertices(tables128)
    want = train(loc)
    torch.testing.assert_close(GatherUVToVertices.like(train)(loc), want)
    # float32 grid coordinates and the coverage renormalisation: ~2e-5 on a N(0,1) map
    scale = loc.abs().max().item()
    torch.testing.assert_close(UVToVerticesGrid(tables128)(loc), want, atol=1e-5 * scale, rtol=0)


@pytest.mark.parametrize("align_corners", [False, True])
def test_table_without_coverage_is_official_resample(align_corners):
    """No coverage: grid_sample (zeros padding) at every UV copy, then the copy mean."""
    g = torch.Generator().manual_seed(5)
    copies = [torch.rand(k, 2, generator=g).numpy() * 1.1 - 0.05 for k in (1, 2, 4, 1, 3)]
    index, weight = build_uv_sampling_table(copies, 16, align_corners=align_corners)
    loc = torch.randn(2, 3, 16, 16, generator=g)
    got = UVToVertices((index, weight))(loc)
    pix = np.concatenate([uv_to_pixel(c, 16, align_corners) for c in copies])
    size = 15 if align_corners else 16
    grid = torch.as_tensor((pix + (0 if align_corners else 0.5)) / size * 2 - 1).float()
    sampled = F.grid_sample(
        loc, grid.reshape(1, 1, -1, 2).expand(2, -1, -1, -1), align_corners=align_corners
    )[:, :, 0]
    owner = torch.as_tensor(np.repeat(np.arange(len(copies)), [len(c) for c in copies]))
    counts = torch.bincount(owner).float()
    want = torch.zeros(2, 3, len(copies)).index_add_(2, owner, sampled) / counts
    torch.testing.assert_close(got, want.transpose(1, 2), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("form", ["gather", "grid"])
def test_sampling_onnx_match_torch(tables64, form):
    loc = torch.randn(2, 3, 64, 64)
    train = UVToVertices(tables64)
    deploy = GatherUVToVertices.like(train) if form == "gather" else UVToVerticesGrid(tables64)
    (got,), graph = run_onnx(deploy, (loc,))
    assert np.abs(got - train(loc).numpy()).max() <= 1e-5 * loc.abs().max().item()
    assert ("GridSample" in op_types(graph)) == (form == "grid")
    assert not any(op.startswith("Scatter") for op in op_types(graph))


class ToyUVModel(nn.Module):
    def __init__(self, tables):
        super().__init__()
        self.scatter = UVScatterMean(tables.uv_size)
        self.head = nn.Conv2d(4, 3, 1)
        self.sample = UVToVertices(tables)

    def forward(self, f, t, m):
        return self.sample(self.head(self.scatter(f, t, m)))


@pytest.mark.parametrize("scatter,sample", [("add", "gather"), ("matmul", "grid")])
def test_apply_rewrites_swaps_uv_layers(tables64, scatter, sample):
    model = ToyUVModel(tables64).eval()
    deploy, report = apply_rewrites(model, uv_scatter=scatter, uv_sample=sample)
    assert {k: v[1] for k, v in report.swapped.items()} == {
        "scatter": {"add": "ScatterAddUVScatterMean", "matmul": "MatMulUVScatterMean"}[scatter],
        "sample": {"gather": "GatherUVToVertices", "grid": "UVToVerticesGrid"}[sample],
    }
    f, t, m = torch.randn(2, 4, 28, 28), torch.rand(2, 2, 28, 28), torch.rand(2, 1, 28, 28)
    torch.testing.assert_close(deploy(f, t, m), model(f, t, m), atol=1e-5, rtol=1e-5)
    assert type(model.scatter) is UVScatterMean  # the input model is untouched
    bare = ToyUVModel(tables64)
    bare.sample = UVToVertices((tables64.index, tables64.weight))
    with pytest.raises(InputError, match="uv-sample gather"):
        apply_rewrites(bare, uv_sample="grid")


def test_audit_verdicts_per_tensorrt_version(tables64):
    """add: TensorRT 10+ only; matmul and gather: every version; grid (GridSample): 8.5+."""
    features, uv, mask = scatter_inputs(n=1, c=3, h=8, w=8)
    train = UVScatterMean(8)
    loc = torch.randn(1, 3, 64, 64)
    graphs = {
        "add": run_onnx(ScatterAddUVScatterMean.like(train), (features, uv, mask))[1],
        "matmul": run_onnx(MatMulUVScatterMean.like(train), (features, uv, mask), opset=13)[1],
        "gather": run_onnx(GatherUVToVertices.like(UVToVertices(tables64)), (loc,), 13)[1],
        "grid": run_onnx(UVToVerticesGrid(tables64), (loc,))[1],
    }
    verdict = {
        (form, version): not audit(graphs[form], version).errors
        for form in graphs
        for version in ("8.2", "8.4", "8.5", "8.6", "10", "11")
    }
    assert {v for (form, v), ok in verdict.items() if form == "add" and ok} == {"10", "11"}
    assert all(ok for (form, v), ok in verdict.items() if form in ("matmul", "gather"))
    assert {v for (form, v), ok in verdict.items() if form == "grid" and ok} == {
        "8.5", "8.6", "10", "11"
    }  # fmt: skip
    errors = audit(graphs["add"], "8.6").errors
    assert errors and "--uv-scatter matmul" in errors[0].message


def test_export_options_choose_uv_forms():
    from hmrt.export.onnx_export import ExportOptions, resolve_options

    assert resolve_options(ExportOptions(trt_version="10")).uv_scatter == "add"
    assert resolve_options(ExportOptions(trt_version="8.6")).uv_scatter == "matmul"
    assert resolve_options(ExportOptions(trt_version="8.6")).uv_sample == "gather"
    with pytest.raises(AuditError, match="uv-scatter matmul"):
        resolve_options(ExportOptions(trt_version="8.6", uv_scatter="add"))
    with pytest.raises(AuditError, match="uv-sample gather"):
        resolve_options(ExportOptions(trt_version="8.4", uv_sample="grid"))
