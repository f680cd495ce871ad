"""Benchmark of the model zoo: parameters, GFLOPs, torch and ONNX Runtime CPU latency at batch 1.

Run from the repository root: ``python bench/bench_models.py [--models danet:edge danet:paper]
[--threads 1 2] [--body PATH] [--no-ort]``. Prints a markdown table with the machine. ONNX files
are exported with the TorchScript exporter at opset 17 (dynamic batch on every input and output)
with the model's own RoI pooling (``grid``) and, when ``hmrt.export`` is installed, the gather
and separable-MatMul rewrites (``gather``, ``matmul``). Uses the bundled body model unless ``--body`` is given; if neither exists, a
random stand-in with the open model's sizes (13,718 vertices; say so in any report). Weights are
random: latency does not depend on them.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np


def _stand_in(path: Path) -> Path:
    """Random arrays with the open model's sizes: timing only, not a body."""
    from hmrt.runtime.body.layout import SMPL_PARENTS

    rng = np.random.default_rng(0)
    n_verts, n_faces = 13718, 27420
    weights = rng.random((n_verts, 24)) * (rng.random((n_verts, 24)) < 0.1)
    weights[np.arange(n_verts), rng.integers(0, 24, n_verts)] += 1.0
    regressor = rng.random((24, n_verts)) * (rng.random((24, n_verts)) < 0.01) + 1e-3
    np.savez(
        path,
        v_template=rng.normal(size=(n_verts, 3)).astype(np.float32),
        shapedirs=rng.normal(0, 0.01, (n_verts, 3, 10)).astype(np.float32),
        posedirs=np.zeros((n_verts, 3, 207), np.float32),
        J_regressor=(regressor / regressor.sum(1, keepdims=True)).astype(np.float32),
        weights=(weights / weights.sum(1, keepdims=True)).astype(np.float32),
        kintree_table=np.stack([np.array(SMPL_PARENTS), np.arange(24)]),
        f=rng.integers(0, n_verts, (n_faces, 3)).astype(np.int32),
    )
    return path


def _times_ms(fn: Callable[[], object], seconds: float) -> tuple[float, float]:
    """(median, 10th percentile) wall time in ms; the percentile shows the uncontended cost."""
    for _ in range(3):
        fn()
    times = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 10:
        t = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - t))
    return statistics.median(times), float(np.percentile(times, 10))


def _export(model, path: Path, size: tuple[int, int]) -> None:
    import torch

    names = ["image", *model.output_names]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (torch.zeros(1, 3, *size),), str(path), dynamo=False, opset_version=17,
            input_names=names[:1], output_names=names[1:],
            dynamic_axes={k: {0: "batch"} for k in names},
        )  # fmt: skip


def main() -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["danet:edge", "danet:paper"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--body", help="body model npz (default: the bundled model)")
    parser.add_argument("--no-ort", action="store_true", help="skip the ONNX Runtime columns")
    parser.add_argument("--repeat-seconds", type=float, default=2.0)
    args = parser.parse_args()

    import torch

    from hmrt.runtime.body import default_body_path
    from hmrt.train.body import BodyLayer
    from hmrt.train.models import build
    from hmrt.train.models.flops import count_flops

    tmp = Path(tempfile.mkdtemp())
    path = Path(args.body) if args.body else default_body_path()
    label = str(path)
    if not path.exists() and not args.body:
        path = _stand_in(tmp / "stand_in.npz")
        label = "random stand-in with the open model's sizes (bundled model not built)"
    body = BodyLayer(path)

    rows = []
    for spec in args.models:
        name, _, variant = spec.partition(":")
        torch.manual_seed(0)
        model = build(name, variant or "paper", body=body).eval()
        counts = model.parameter_counts()
        gflops = count_flops(model).gflops
        image = torch.randn(1, 3, *model.input_size)
        for threads in args.threads:
            torch.set_num_threads(threads)
            with torch.no_grad():
                torch_ms = _times_ms(lambda m=model, x=image: m(x), args.repeat_seconds)
            ort_ms = {}
            if not args.no_ort:
                ort_ms = _ort_times(model, tmp / f"{name}_{variant}", threads, args.repeat_seconds)
            rows.append((spec, counts, gflops, threads, torch_ms, ort_ms))

    import onnxruntime as ort

    from hmrt.runtime.stats import machine_line

    print(f"machine: {machine_line()}")
    print(
        f"date: {datetime.date.today()}, torch {torch.__version__}, onnxruntime {ort.__version__}"
    )
    print(f"body: {label}: {body.n_verts} vertices")
    print()
    print(
        "| model | params (inference) | GFLOPs | threads | torch ms (median / p10) | "
        "ORT grid ms (median / p10) | ORT gather ms (median / p10) | "
        "ORT matmul ms (median / p10) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for spec, counts, gflops, threads, torch_ms, ort_ms in rows:
        cells = [
            f"{ort_ms[k][0]:.1f} / {ort_ms[k][1]:.1f}" if k in ort_ms else "-"
            for k in ("grid", "gather", "matmul")
        ]
        print(
            f"| {spec} | {counts['inference'] / 1e6:.2f} M | {gflops:.2f} | {threads} | "
            f"{torch_ms[0]:.1f} / {torch_ms[1]:.1f} | {' | '.join(cells)} |"
        )


def _ort_times(model, stem: Path, threads: int, seconds: float) -> dict[str, tuple[float, float]]:
    import onnxruntime as ort

    variants = {"grid": model}
    try:
        from hmrt.export.rewrites.apply import apply_rewrites

        variants["gather"] = apply_rewrites(model, "gather")[0]
        variants["matmul"] = apply_rewrites(model, "matmul")[0]
    except ImportError:
        pass
    out = {}
    image = np.random.default_rng(0).normal(size=(1, 3, *model.input_size)).astype(np.float32)
    for kind, net in variants.items():
        path = stem.with_name(f"{stem.name}_{kind}.onnx")
        if not path.exists():
            _export(net, path, model.input_size)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        out[kind] = _times_ms(lambda s=session: s.run(None, {"image": image}), seconds)
    return out


if __name__ == "__main__":
    main()
