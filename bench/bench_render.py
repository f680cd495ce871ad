"""Benchmark of the CPU renderer: 224x224 and 56x56 IUV maps, 640x480 shaded overlay.

Run from the repository root: ``python bench/bench_render.py [--repeat-seconds 2]``. Prints a
markdown table with the machine, the mesh, median wall times and CPU times (warm-up and JIT
excluded). Uses the default body ``assets/body/hmrt_body.npz`` (rest pose) when it exists,
otherwise a synthetic stand-in of similar size, and says which.
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import time
from collections.abc import Callable

import numba
import numpy as np

from hmrt.assets import asset_path
from hmrt.runtime import camera
from hmrt.runtime.render import rasterize, render_iuv, render_overlay
from hmrt.runtime.stats import machine_line

BATCH = 16


def _ellipsoid_body() -> tuple[np.ndarray, np.ndarray]:
    """~30k-face stand-in: six subdivided ellipsoids in the body frame (Y up, metres)."""
    t = (1 + 5**0.5) / 2
    verts = [np.array(p, float) for p in [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0),
             (0, -1, t), (0, 1, t), (0, -1, -t), (0, 1, -t), (t, 0, -1), (t, 0, 1),
             (-t, 0, -1), (-t, 0, 1)]]  # fmt: skip
    faces = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4),
             (11, 10, 2), (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8),
             (3, 8, 9), (4, 9, 5), (2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1)]  # fmt: skip
    verts = [v / np.linalg.norm(v) for v in verts]
    for _ in range(4):
        mids: dict = {}
        new = []
        for a, b, c in faces:
            m = []
            for i, j in ((a, b), (b, c), (c, a)):
                key = (min(i, j), max(i, j))
                if key not in mids:
                    p = verts[i] + verts[j]
                    verts.append(p / np.linalg.norm(p))
                    mids[key] = len(verts) - 1
                m.append(mids[key])
            new += [(a, m[0], m[2]), (b, m[1], m[0]), (c, m[2], m[1]), tuple(m)]
        faces = new
    sv, sf = np.array(verts), np.array(faces, dtype=np.int32)
    parts = [((0, 1.2, 0), (0.17, 0.3, 0.11)), ((0, 1.65, 0), (0.1, 0.12, 0.1)),
             ((-0.5, 1.4, 0), (0.35, 0.05, 0.05)), ((0.5, 1.4, 0), (0.35, 0.05, 0.05)),
             ((-0.1, 0.45, 0), (0.08, 0.45, 0.08)), ((0.1, 0.45, 0), (0.08, 0.45, 0.08))]  # fmt: skip
    v = np.concatenate([sv * r + c for c, r in parts])
    f = np.concatenate([sf + k * len(sv) for k in range(len(parts))])
    return v, f


def load_mesh() -> tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """(label, rest vertices in body frame, faces, dp_I, dp_uv, J_regressor or None)."""
    path = asset_path("body/hmrt_body.npz")
    if path.exists():
        body = np.load(path, allow_pickle=False)
        return (
            "default body (assets/body/hmrt_body.npz, rest pose)",
            body["v_template"].astype(np.float64),
            body["f"].astype(np.int32),
            body["dp_I"],
            body["dp_uv"],
            body["J_regressor"],
        )
    v, f = _ellipsoid_body()
    rng = np.random.default_rng(0)
    dp_I = (np.arange(len(f)) % 24 + 1).astype(np.uint8)
    dp_uv = rng.uniform(0, 1, (len(f), 3, 2)).astype(np.float32)
    return "synthetic stand-in (hmrt_body.npz missing)", v, f, dp_I, dp_uv, None


def to_camera(verts: np.ndarray, height_px: float, focal: float, centre: np.ndarray) -> np.ndarray:
    """Body frame (Y up, facing +Z) -> camera frame facing the camera, ``height_px`` tall."""
    v = verts * [1.0, -1.0, -1.0]  # 180 degrees about X
    v = v - (v.min(0) + v.max(0)) / 2
    tz = focal * (v[:, 1].max() - v[:, 1].min()) / height_px
    return v + np.array([centre[0], centre[1], tz])


def timeit(fn: Callable[[], object], seconds: float) -> tuple[float, float]:
    """(median wall ms, mean process-CPU ms over all threads) of ``fn`` over ``seconds``.

    Two warm-up calls first (JIT, caches). CPU time shows the cost even when other jobs on
    the shared cores stretch the wall time.
    """
    fn()
    fn()
    times: list[float] = []
    cpu0, start = time.process_time(), time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 5:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    cpu = (time.process_time() - cpu0) / len(times)
    return float(np.median(times) * 1e3), cpu * 1e3


def first_call_seconds() -> float:
    """Seconds for import + first 224x224 render in a fresh interpreter (JIT cache warm)."""
    code = (
        "import time; t = time.perf_counter(); import numpy as np; "
        "from hmrt.runtime.render import render_iuv; from hmrt.runtime import camera; "
        "v = np.array([[0, 0, 10.0], [1, 0, 10], [0, 1, 10]]); f = np.array([[0, 1, 2]]); "
        "render_iuv(v, f, camera.crop_intrinsics(224), 224, 224, np.ones(1, np.uint8), "
        "np.zeros((1, 3, 2), np.float32)); print(time.perf_counter() - t)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)  # fill cache
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return float(out.stdout.strip())


def main() -> None:
    """Time each render configuration and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat-seconds", type=float, default=2.0)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    label, rest, faces, dp_I, dp_uv, J_reg = load_mesh()

    K224 = camera.crop_intrinsics(224)
    v224 = to_camera(rest, 0.85 * 224, camera.CROP_FOCAL, np.zeros(2))
    batch = np.stack([v224 + np.array([0.01 * k, 0.0, 0.0]) for k in range(BATCH)])
    K56 = camera.scale_intrinsics(K224, 56 / 224)
    K640 = camera.default_intrinsics(640, 480)
    v640 = to_camera(rest, 400.0, K640[0, 0], np.zeros(2))
    frame = np.full((480, 640, 3), 96, np.uint8)
    # 24 joints for the skeleton: regressed on the body, any 24 vertices on the stand-in.
    j3d = J_reg @ v640 if J_reg is not None else v640[:: len(v640) // 24][:24]
    joints = camera.project(j3d, K640)
    s = args.repeat_seconds

    rows = [
        ("raster 224x224 (face id, bary, depth)", 1,
         timeit(lambda: rasterize(v224, faces, K224, 224, 224), s)),
        ("IUV 224x224, single", 1, timeit(lambda: render_iuv(v224, faces, K224, 224, 224, dp_I, dp_uv), s)),
        (f"IUV 224x224, batch of {BATCH}", BATCH,
         timeit(lambda: render_iuv(batch, faces, K224, 224, 224, dp_I, dp_uv), s)),
        (f"IUV 224x224, {BATCH} single calls in a loop", BATCH,
         timeit(lambda: [render_iuv(v, faces, K224, 224, 224, dp_I, dp_uv) for v in batch], s)),
        ("IUV 224x224, single, cull_back", 1,
         timeit(lambda: render_iuv(v224, faces, K224, 224, 224, dp_I, dp_uv, cull_back=True), s)),
        ("IUV 56x56 (K scaled), single", 1, timeit(lambda: render_iuv(v224, faces, K56, 56, 56, dp_I, dp_uv), s)),
        (f"IUV 56x56, batch of {BATCH}", BATCH,
         timeit(lambda: render_iuv(batch, faces, K56, 56, 56, dp_I, dp_uv), s)),
        ("overlay 640x480 (shaded mesh + skeleton)", 1,
         timeit(lambda: render_overlay(frame, v640, faces, K640, joints2d=joints), s)),
    ]  # fmt: skip

    print(f"date: {datetime.date.today().isoformat()}")
    print(f"machine: {machine_line()}")
    print(f"numba {numba.__version__} with {numba.get_num_threads()} threads "
          f"({numba.threading_layer()} layer)")  # fmt: skip
    print(f"mesh: {label}: {len(rest)} vertices, {len(faces)} faces")
    print("command: python bench/bench_render.py  (median wall time, warm-up excluded)")
    print(f"load average before: {load:.2f} (other jobs share the cores)")
    print(f"import + first render, fresh process, JIT cache warm: {first_call_seconds():.2f} s\n")
    print("| render | wall ms per call | wall ms per image | images/s | CPU ms per image |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, n, (ms, cpu) in rows:
        print(f"| {name} | {ms:.2f} | {ms / n:.2f} | {1000 * n / ms:.0f} | {cpu / n:.2f} |")


if __name__ == "__main__":
    main()
