"""ONNX test helper shared by the UV layer tests: export a module, run it in ONNX Runtime."""

from __future__ import annotations

import io
import warnings

import onnx
import onnxruntime as ort
import torch


def export_and_run(module: torch.nn.Module, inputs: tuple, batches=(1, 4)):
    """Export like hmrt's exporter (TorchScript, opset 17, dynamic batch); run each batch size
    in ONNX Runtime. Returns the graph and ``{batch: (onnx outputs, torch outputs)}``."""
    names = [f"in{i}" for i in range(len(inputs))]
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(), inputs, buf, dynamo=False, opset_version=17, input_names=names,
            dynamic_axes={k: {0: "batch"} for k in names}, do_constant_folding=True,
        )  # fmt: skip
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    runs = {}
    for n in batches:
        feed = tuple(x[:1].repeat(n, *([1] * (x.ndim - 1))) if x.shape[0] < n else x[:n]
                     for x in inputs)  # fmt: skip
        got = session.run(None, {k: v.numpy() for k, v in zip(names, feed)})
        with torch.no_grad():
            want = module(*feed)
        want = want if isinstance(want, tuple) else (want,)
        runs[n] = (got, [w.numpy() for w in want])
    return onnx.load_from_string(buf.getvalue()), runs
