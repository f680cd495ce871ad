"""Quantization-aware training (hmrt.calib.qat): the plan, QAT steps, and the Q/DQ graph it writes.

A tiny DaNet-edge (random weights, the tiny test body) fine-tuned for two steps on rendered
shards; its Q/DQ graph is compared with the PTQ graph of the same FP32 export.
"""

from __future__ import annotations

import functools
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch
from body_helpers import write_synthetic_body

pytest.importorskip("torchao", reason="QAT needs torchao (pip install torchao)")


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread (the shared 2-core machine; see tests/test_train_danet.py)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@functools.lru_cache(maxsize=1)
def _tiny(root):
    from hmrt.train.data.generate import generate_shards
    from hmrt.train.data.synth import SynthConfig

    body = write_synthetic_body(root / "body.npz")
    shards = root / "shards"
    generate_shards(shards, 4, 4, SynthConfig(body_path=str(body)), workers=1, progress=False)
    return body, shards


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny body and 4 rendered training samples (shards)."""
    return _tiny(tmp_path_factory.mktemp("qat"))


def _model(body):
    from hmrt.train.models import build

    torch.manual_seed(0)
    return build("danet", "edge", body=str(body)).train()


def _batches(shards, model, n: int = 2):
    from torch.utils.data import default_collate

    from hmrt.train.data.dataset import ShardDataset
    from hmrt.train.sources import augment_config

    ds = ShardDataset(shards, augment=augment_config(model, train=True), aug_seed=0)
    while True:
        yield default_collate([ds[i] for i in range(n)])


@pytest.fixture(scope="module")
def qat_run(tiny, tmp_path_factory):
    """Two QAT steps on the tiny model: (run dir, fine-tuned model, FP32 export)."""
    from hmrt.calib.qat import QatOptions, fine_tune
    from hmrt.export.onnx_export import ExportOptions, export_model

    body, shards = tiny
    torch.set_num_threads(1)
    model = _model(body)
    out = tmp_path_factory.mktemp("qat_run")
    options = QatOptions(steps=2, batch_size=2, ckpt_every=1, log_every=1)
    lines: list[str] = []
    tuned, ckpt = fine_tune(
        model, out, options, _batches(shards, model), progress=False, log=lines.append
    )
    assert ckpt.is_file() and (out / "qat_ranges.npz").is_file()
    assert len(lines) == 2 and "loss" in lines[-1]
    fp32 = out / "qat_fp32.onnx"
    export_model(tuned.eval(), fp32, "danet", "edge", ExportOptions())
    return out, tuned, fp32


def test_prepare_annotates_exactly_the_plan(tiny):
    """Every conv/linear outside the islands, heads and train-only modules gets fake quant on
    its input and per-channel weight; nothing inside them does; heads as the ONNX plan's."""
    from torchao.quantization.pt2e import FakeQuantizeBase

    from hmrt.calib.qat import _CONV_OPS, _under, module_path, prepare_qat

    body, shards = tiny
    model = _model(body)
    batch = next(_batches(shards, model))
    prepared = prepare_qat(model, batch["image"])
    plan = prepared.plan
    assert set(plan.islands) == {
        "img2iuv.soft_argmax",
        "img2iuv.roi_theta",
        "img2iuv.roi_pool",
        "regressor.rotation",
        "body",
    }
    assert plan.heads == ["regressor.body_net.3.fc", "regressor.pose_regressors.1.1"]
    floats = plan.float_paths()
    gm = prepared.module
    fq = {n for n, m in gm.named_modules() if isinstance(m, FakeQuantizeBase)}
    n_conv = 0
    for node in gm.graph.nodes:
        if node.op != "call_function" or str(node.target) not in _CONV_OPS:
            continue
        # the prepared graph reads fake-quantized inputs via call_module nodes (QAT conv-bn
        # folding rewrites the weight path, so look one op further for the weight)
        reads_fq = any(
            isinstance(a, torch.fx.Node) and a.op == "call_module" and a.target in fq
            for a in node.args[:2]
        )
        if _under(module_path(node), floats):
            assert not reads_fq, f"{node.name} ({module_path(node)}) is float by the plan"
        else:
            n_conv += 1
            assert reads_fq, f"{node.name} ({module_path(node)}) has no fake quantization"
    assert n_conv == len([n for n in plan.weighted if "conv" in n or "linear" in n])
    assert plan.adds, "the residual adds are fake-quantized too"
    # per-channel symmetric int8 weights, per-tensor symmetric int8 activations
    schemes = {gm.get_submodule(n).qscheme for n in fq}
    assert schemes == {torch.per_tensor_symmetric, torch.per_channel_symmetric}

    # The ONNX plan's heads are the same modules.
    from hmrt.calib.qdq_plan import final_heads

    onnx_heads = final_heads(onnx.load(str(_fp32_of_random(body))))
    for head in onnx_heads:
        assert any(
            h.split(".", 1)[1].replace(".", "/") in head.replace(".", "/") for h in plan.heads
        ), head


@functools.lru_cache(maxsize=1)
def _fp32_of_random(body):
    import tempfile
    from pathlib import Path

    from hmrt.export.onnx_export import ExportOptions, export_model

    path = Path(tempfile.mkdtemp(prefix="hmrt_qat_")) / "fp32.onnx"
    export_model(_model(body).eval(), path, "danet", "edge", ExportOptions())
    return path


def test_qat_steps_write_a_loadable_hmrt_checkpoint(qat_run, tiny):
    """``qat.pt`` is an ordinary hmrt checkpoint holding the fine-tuned weights + the recipe."""
    from hmrt.train.checkpoint import load_checkpoint, read_checkpoint

    out, _, _ = qat_run
    ck = read_checkpoint(out / "qat.pt")
    assert ck["qat"]["step"] == 2 and ck["qat"]["engine"].startswith("torchao")
    loaded = load_checkpoint(out / "qat.pt", body=str(tiny[0]))
    start = _model(tiny[0]).state_dict()
    changed = [k for k, v in loaded.state_dict().items() if not torch.equal(v, start[k])]
    assert any(k.startswith("img2iuv") for k in changed)
    assert any(k.startswith("regressor") for k in changed)


def _qdq_structure(path):
    model = onnx.load(str(path))
    g = model.graph
    inits = {t.name for t in g.initializer}
    q = [n for n in g.node if n.op_type == "QuantizeLinear"]
    dq = [n for n in g.node if n.op_type == "DequantizeLinear"]
    readers = {}
    for n in g.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    quantized = sorted(
        r.name
        for d in dq
        for r in readers.get(d.output[0], [])
        if r.op_type not in ("QuantizeLinear", "DequantizeLinear")
    )
    acts = sorted(n.input[0] for n in q if n.input[0] not in inits)
    return quantized, acts, len(q), len(dq), model


def test_qat_qdq_graph_has_the_ptq_structure_and_runs(qat_run):
    """Same quantized nodes and Q/DQ as the PTQ graph of the same export; opset 17,
    symmetric int8, per-channel weights; ONNX Runtime runs it close to FP32 on the probe."""
    from hmrt.calib.qat_ranges import Observed, write_qat_qdq
    from hmrt.calib.qdq import QuantizeOptions, quantize_to_qdq

    out, _, fp32 = qat_run
    observed = Observed.load(out / "qat_ranges.npz")
    images = observed.probe
    ptq = quantize_to_qdq(fp32, out / "ptq.onnx", images, QuantizeOptions(), progress=False)
    result, match = write_qat_qdq(fp32, out / "qat_ranges.npz", out / "qat.onnx", progress=False)
    assert match.matched and not match.fallback_quantized
    a, b = _qdq_structure(ptq.path), _qdq_structure(result.path)
    assert a[:4] == b[:4]
    model = b[4]
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["hmrt.int8_recipe"] == "qat" and meta["hmrt.precision"] == "int8"
    assert next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == 17
    consts = {t.name: t for t in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2:
            zp = onnx.numpy_helper.to_array(consts[n.input[2]])
            assert zp.dtype == np.int8 and not zp.any()
    per_channel = [  # weights: a scale per output channel
        n
        for n in model.graph.node
        if n.op_type == "DequantizeLinear"
        and n.input[1] in consts
        and onnx.numpy_helper.to_array(consts[n.input[1]]).size > 1
    ]
    assert per_channel

    import onnxruntime as ort

    def run(path):
        s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return s.run(["joints3d"], {"image": images[:2]})[0]

    ref, q = run(fp32), run(result.path)
    assert np.isfinite(q).all() and q.shape == ref.shape


def test_qat_ranges_are_the_observers(qat_run):
    """A matched tensor's range is its observer's amax (symmetric)."""
    from hmrt.calib.qat_ranges import Observed, match_ranges

    out, _, fp32 = qat_run
    observed = Observed.load(out / "qat_ranges.npz")
    match = match_ranges(fp32, observed)
    index = {n: i for i, n in enumerate(observed.names)}
    for tensor, fq in list(match.matched.items())[:20]:
        t, _lo, _hi = match.ranges.tensors[tensor]
        assert t >= observed.ranges[index[fq]][0] - 1e-9


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--qat", "--data", "synth", "--out", "x.onnx"], "--qat needs --checkpoint"),
        (
            ["--qat", "--checkpoint", "nope.pt", "--data", "synth", "--out", "x.onnx"],
            "file not found",
        ),
        (["--data", "synth", "--out", "x.onnx"], "--onnx FP32.onnx is required"),
    ],
)
def test_bad_qat_input_is_one_line(argv, message, tmp_path):
    """Bad input: exit code 2 and one line naming the fix, before anything heavy runs."""
    proc = subprocess.run(
        [sys.executable, "-m", "hmrt", "calibrate", *argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], proc.stderr


@pytest.mark.slow
def test_calibrate_qat_command_end_to_end(tmp_path):
    """``hmrt calibrate --qat`` on a random-init DaNet-edge checkpoint (bundled body): one
    step, the FP32 export and the Q/DQ graph, which ONNX Runtime runs (minutes on 2 cores)."""
    from hmrt.train.checkpoint import save_checkpoint
    from hmrt.train.models import build

    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "edge.pt", build("danet", "edge"))
    out = tmp_path / "edge.qat.int8.onnx"
    argv = ["--qat", "--checkpoint", str(ckpt), "--steps", "1", "--qat-batch", "2",
            "--threads", "1", "--data", "synth", "--calib-n", "4", "--run-dir",
            str(tmp_path / "run"), "--out", str(out), "--no-progress"]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "hmrt", "calibrate", *argv], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "from QAT ranges" in proc.stdout and (tmp_path / "run" / "qat.pt").is_file()
    import onnxruntime as ort

    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = np.zeros((1, 3, 224, 224), np.float32)
    assert np.isfinite(sess.run(["joints3d"], {"image": x})[0]).all()
