"""HKMR's unrolled regressor before and after the export rewrites: ONNX nodes and ORT CPU latency.

Run from the repository root (niced: the machine is shared)::

    OMP_NUM_THREADS=1 nice -n 15 python bench/bench_hkmr_unroll.py                 # edge
    OMP_NUM_THREADS=1 nice -n 15 python bench/bench_hkmr_unroll.py --variants edge paper

Three forms of each variant, all exported the way ``hmrt export`` does (TorchScript exporter,
opset 17, onnxslim, FP32 islands), random weights (latency does not depend on them; no trained
HKMR weights exist; the per-joint heads get Xavier gain 0.3 instead of 0.01 so the pose moves
with the input and the difference column is not trivially zero):

* ``training form``: ``--hkmr-fold off``, the paper's modules as trained;
* ``feature once``: only ``export/rewrites/hkmr_feature_split.py`` (W_Φ Φ once per module);
* ``feature once + heads folded``: also ``export/rewrites/hkmr_head_fold.py`` (one Linear per
  pass direction): ``--hkmr-fold on``, the default.

Two graphs per form: the whole model (``image -> vertices ...``) and the regressor alone
(``Φ -> pose, betas, cam`` of the final step), where the rewrites act. Rows give the node count,
the MatMul/Gemm count, the median ONNX Runtime CPU time at batch 1 for each thread count
(``--runs`` interleaved runs: the forms alternate so load from other users hits them alike) and
the largest output difference from the training form. A benchmark, never a test.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

FORMS = (
    ("training form", False, False),
    ("feature once", True, False),
    ("feature once + heads folded", True, True),
)


def deploy_copy(model, split: bool, fold: bool):
    """An eval copy of ``model`` with the chosen HKMR rewrites applied."""
    from hmrt.export.rewrites.apply import RewriteReport, apply_hkmr_fold

    deploy = copy.deepcopy(model).eval()
    apply_hkmr_fold(deploy, RewriteReport(), split=split, fold=fold)
    return deploy


def export_regressor(model, path: Path) -> Path:
    """The regressor alone, ``feature (N, F) -> pose (N,24,3), betas, cam`` (final step), as
    ``hmrt export`` would write it (opset 17, dynamic batch, onnxslim)."""
    import onnx
    import torch

    from hmrt.export.onnx_export import simplify

    class Final(torch.nn.Module):
        def __init__(self, regressor):
            super().__init__()
            self.regressor = regressor

        def forward(self, feature):
            return self.regressor(feature)[-1]

    dim = model.regressor.chains["root"].embed.feature_dim
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Final(model.regressor).eval(), (torch.zeros(2, dim),), str(path), dynamo=False,
            opset_version=17, input_names=["feature"], output_names=["pose", "betas", "cam"],
            dynamic_axes={n: {0: "batch"} for n in ("feature", "pose", "betas", "cam")},
        )  # fmt: skip
    onnx.save(simplify(onnx.load(str(path))), str(path))
    return path


def session(path: Path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def interleaved_ms(paths: dict[str, Path], x: np.ndarray, threads: int, runs: int) -> dict:
    """Median milliseconds per batch-1 run of each graph, the graphs alternating every run."""
    sessions = {k: session(p, threads) for k, p in paths.items()}
    feeds = {k: {s.get_inputs()[0].name: x} for k, s in sessions.items()}
    for k, s in sessions.items():
        for _ in range(3):
            s.run(None, feeds[k])
    times: dict[str, list[float]] = {k: [] for k in sessions}
    for _ in range(runs):
        for k, s in sessions.items():
            t0 = time.perf_counter()
            s.run(None, feeds[k])
            times[k].append(1e3 * (time.perf_counter() - t0))
    return {k: float(np.median(v)) for k, v in times.items()}


def max_diff(paths: dict[str, Path], x: np.ndarray, reference: str) -> dict[str, float]:
    """Largest |first output - training form's|: vertices (m) of the model, pose (rad) of the
    regressor."""
    outs = {}
    for k, p in paths.items():
        s = session(p, 1)
        outs[k] = s.run(None, {s.get_inputs()[0].name: x})[0]
    return {k: float(np.abs(v - outs[reference]).max()) for k, v in outs.items()}


def graph_stats(path: Path) -> tuple[int, int]:
    import onnx

    nodes = onnx.load(str(path)).graph.node
    return len(nodes), sum(n.op_type in ("MatMul", "Gemm") for n in nodes)


def bench_variant(variant: str, folder: Path, threads: list[int], runs: int) -> list[dict]:
    import torch

    from hmrt.export.onnx_export import ExportOptions, export_model
    from hmrt.train.models import build
    from hmrt.train.models.hkmr.regressor import JointHeads

    torch.manual_seed(0)
    model = build("hkmr", variant).eval()
    for module in model.regressor.modules():  # lively heads: poses move, diffs mean something
        if isinstance(module, JointHeads):
            for head in module.heads:
                torch.nn.init.xavier_uniform_(head.weight, gain=0.3)
    size = tuple(model.input_size)
    dim = model.regressor.chains["root"].embed.feature_dim
    rng = np.random.default_rng(0)
    inputs = {
        "model": rng.standard_normal((1, 3, *size), dtype=np.float32),
        "regressor": rng.standard_normal((1, dim), dtype=np.float32),
    }
    paths: dict[str, dict[str, Path]] = {"model": {}, "regressor": {}}
    for label, split, fold in FORMS:
        deploy = deploy_copy(model, split, fold)
        stem = f"{variant}_{int(split)}{int(fold)}"
        out = folder / f"{stem}.onnx"
        export_model(deploy, out, "hkmr", variant, ExportOptions(hkmr_fold=False))
        paths["model"][label] = out
        paths["regressor"][label] = export_regressor(deploy, folder / f"{stem}_reg.onnx")
    rows = []
    for graph, forms in paths.items():
        x = inputs[graph]
        diffs = max_diff(forms, x, FORMS[0][0])
        times = {t: interleaved_ms(forms, x, t, runs) for t in threads}
        for label, path in forms.items():
            nodes, gemms = graph_stats(path)
            ms = {t: times[t][label] for t in threads}
            rows.append(dict(variant=variant, graph=graph, form=label, nodes=nodes,
                             gemms=gemms, ms=ms, diff=diffs[label]))  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    import onnxruntime as ort
    import torch

    from hmrt.runtime.stats import machine_line

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="+", default=["edge"], choices=("edge", "paper"))
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--runs", type=int, default=50, help="timed runs per graph and thread count")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    print(f"machine: {machine_line()}")
    print(
        f"date: {datetime.date.today()}, torch {torch.__version__}, onnxruntime "
        f"{ort.__version__}; batch 1, median of {args.runs} interleaved runs; random weights"
    )
    heads = " | ".join(f"ORT {t} thr. ms" for t in args.threads)
    print(f"\n| variant | graph | form | ONNX nodes | MatMul+Gemm | {heads} | max abs diff vs "
          "training form (vertices m / pose rad) |")  # fmt: skip
    print("| --- | --- | --- | ---: | ---: | " + "---: | " * len(args.threads) + "---: |")
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        for variant in args.variants:
            for r in bench_variant(variant, Path(tmp), args.threads, args.runs):
                ms = " | ".join(f"{r['ms'][t]:.2f}" for t in args.threads)
                print(f"| {r['variant']} | {r['graph']} | {r['form']} | {r['nodes']} | "
                      f"{r['gemms']} | {ms} | {r['diff']:.1e} |", flush=True)  # fmt: skip
            loads.append(os.getloadavg()[0])
    print("\n1-min load average: " + " -> ".join(f"{v:.2f}" for v in loads))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
