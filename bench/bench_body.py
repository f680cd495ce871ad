"""Benchmark of the body layers: load time, numpy / torch / ONNX Runtime forward at batch 1 and 32.

Also prints the parity of the three layers (and of smplx when installed) on random poses, as
max absolute differences in metres.

Run from the repository root: ``python bench/bench_body.py [--body PATH] [--threads 1]``.
Prints a markdown table with the machine, the load average, the body model and median times.
``--threads`` sets numpy's BLAS, torch and ONNX Runtime threads alike (before numpy loads): on a
shared, busy machine one thread gives stable numbers, more threads stall in OpenMP barriers. Uses the bundled
``assets/body/hmrt_body.npz`` unless ``--body`` is given; if neither exists, a random stand-in
with the open model's sizes (13,718 vertices, 27,420 faces; say so in any report).
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path


def _stand_in(path: Path, posedirs: bool) -> Path:
    """Random arrays with the open model's sizes: timing only, not a body."""
    import numpy as np

    from hmrt.runtime.body.layout import SMPL_PARENTS

    rng = np.random.default_rng(0)
    n_verts, n_faces = 13718, 27420
    weights = rng.random((n_verts, 24)) * (rng.random((n_verts, 24)) < 0.1)
    weights[np.arange(n_verts), rng.integers(0, 24, n_verts)] += 1.0
    regressor = rng.random((24, n_verts)) * (rng.random((24, n_verts)) < 0.01)
    kintree = np.stack([np.array(SMPL_PARENTS), np.arange(24)])
    np.savez(
        path,
        v_template=rng.normal(size=(n_verts, 3)).astype(np.float32),
        shapedirs=rng.normal(0, 0.01, (n_verts, 3, 10)).astype(np.float32),
        posedirs=(rng.normal(0, 1e-3, (n_verts, 3, 207)) * posedirs).astype(np.float32),
        J_regressor=(regressor / regressor.sum(1, keepdims=True)).astype(np.float32),
        weights=(weights / weights.sum(1, keepdims=True)).astype(np.float32),
        kintree_table=kintree,
        f=rng.integers(0, n_verts, (n_faces, 3)).astype(np.int32),
    )
    return path


def _median_ms(fn: Callable[[], object], seconds: float) -> float:
    fn()
    times = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 5:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def main() -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--body", help="body model npz (default: the bundled model)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS / torch / ORT threads")
    parser.add_argument("--repeat-seconds", type=float, default=1.0)
    parser.add_argument(
        "--posedirs", action="store_true", help="stand-in with pose correctives (SMPL-like)"
    )
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    import numpy as np
    import onnxruntime as ort
    import torch

    from hmrt.runtime.body import BodyModel, default_body_path
    from hmrt.runtime.body.model import _load
    from hmrt.runtime.rotations import axis_angle_to_matrix
    from hmrt.train.body import BodyLayer

    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp())
    path = Path(args.body) if args.body else default_body_path()
    label = str(path)
    if not path.exists() and not args.body:
        path = _stand_in(tmp / "stand_in.npz", args.posedirs)
        label = "random stand-in with the open model's sizes (bundled model not built)"

    _load.cache_clear()
    t = time.perf_counter()
    body = BodyModel(path)
    load_ms = 1000 * (time.perf_counter() - t)
    layer = BodyLayer(body).eval()
    onnx_path = tmp / "body.onnx"
    rng = np.random.default_rng(0)
    example = (torch.eye(3).expand(2, 24, 3, 3).contiguous(), torch.zeros(2, 10))
    names, outs = ["rotmats", "betas"], ["vertices", "joints"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            layer, example, onnx_path, dynamo=False, opset_version=17, input_names=names,
            output_names=outs, dynamic_axes={k: {0: "batch"} for k in names + outs},
        )  # fmt: skip
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])

    rows = []
    for batch in (1, 32):
        rotmats = axis_angle_to_matrix(rng.normal(0, 0.5, (batch, 24, 3))).astype(np.float32)
        betas = rng.normal(size=(batch, 10)).astype(np.float32)
        rt, bt = torch.from_numpy(rotmats), torch.from_numpy(betas)
        with torch.no_grad():
            torch_ms = _median_ms(lambda rt=rt, bt=bt: layer(rt, bt), args.repeat_seconds)
        numpy_ms = _median_ms(lambda r=rotmats, b=betas: body.forward(r, b), args.repeat_seconds)
        feeds = {"rotmats": rotmats, "betas": betas}
        ort_ms = _median_ms(lambda f=feeds: session.run(None, f), args.repeat_seconds)
        rows.append((batch, numpy_ms, torch_ms, ort_ms))

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    rotmats = axis_angle_to_matrix(rng.normal(0, 0.6, (32, 24, 3))).astype(np.float32)
    betas = rng.normal(size=(32, 10)).astype(np.float32)
    ref_v, ref_j = body.forward(rotmats, betas)
    with torch.no_grad():
        tv, tj = layer(torch.from_numpy(rotmats), torch.from_numpy(betas))
    ov, oj = session.run(None, {"rotmats": rotmats, "betas": betas})
    parity = [
        ("torch BodyLayer", tv.numpy(), tj.numpy()),
        ("ONNX Runtime (opset 17)", ov, oj),
    ]
    smplx_out = _smplx_forward(body, rotmats, betas)
    if smplx_out is not None:
        parity.append(("smplx 0.1.28 SMPL(data_struct=...)", *smplx_out))

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    from hmrt.runtime.stats import machine_line

    print(f"machine: {machine_line()}")
    print(f"threads: {args.threads}")
    print(f"load average at the end (1, 5, 15 min): {load}")
    print(
        f"date: {datetime.date.today()}, torch {torch.__version__}, onnxruntime {ort.__version__}"
    )
    print(
        f"body: {label}: {body.n_verts} vertices, {body.n_faces} faces, pose correctives: "
        f"{'yes' if body.posedirs is not None else 'no'}; first load {load_ms:.0f} ms"
    )
    print()
    print("| batch | numpy BodyModel (ms) | torch BodyLayer (ms) | ONNX Runtime CPU (ms) |")
    print("| ---: | ---: | ---: | ---: |")
    for batch, numpy_ms, torch_ms, ort_ms in rows:
        print(f"| {batch} | {numpy_ms:.2f} | {torch_ms:.2f} | {ort_ms:.2f} |")
    print()
    print("| vs numpy BodyModel, 32 random poses | max abs vertices (m) | max abs joints (m) |")
    print("| --- | ---: | ---: |")
    for name, verts, joints in parity:
        print(
            f"| {name} | {np.abs(verts - ref_v).max():.1e} | {np.abs(joints - ref_j).max():.1e} |"
        )


def _smplx_forward(body, rotmats, betas):
    """smplx's SMPL on the same arrays (None when smplx is not installed)."""
    try:
        import smplx
        import torch
        from smplx.utils import Struct
        from smplx.vertex_ids import vertex_ids
    except ImportError:
        return None
    import numpy as np

    with np.load(body.path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays.setdefault("posedirs", np.zeros((body.n_verts, 3, 207), np.float32))
    ids = {key: 0 for key in vertex_ids["smplh"]}  # extra joints at SMPL vertex ids: unused
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = smplx.SMPL(model_path="", data_struct=Struct(**arrays), vertex_ids=ids)
    rt = torch.from_numpy(rotmats)
    with torch.no_grad():
        out = model(
            betas=torch.from_numpy(betas), global_orient=rt[:, :1], body_pose=rt[:, 1:],
            pose2rot=False,
        )  # fmt: skip
    return out.vertices.numpy(), out.joints[:, :24].numpy()


if __name__ == "__main__":
    main()
