"""Benchmark of the synthetic data engine: samples/s at 224x224 with 1 and 2 processes.

Run from the repository root: ``python bench/bench_synth.py [--n 300] [--size 224]``.
Measures, after a warm-up (numba compilation, photo loading) in every process, wall-clock
throughput and CPU time per sample (the latter does not depend on other load on the machine):

* ``generator``: ``SyntheticGenerator.sample`` (full scene image + all labels);
* ``generator + encode``: the same plus PNG encoding, i.e. what ``hmrt synth --out`` does;
* ``training item``: ``SyntheticDataset[i]`` (generation + SPIN augmentation + crop + the
  56x56 dense targets re-rendered in the crop), what a DataLoader worker does;

each with 1 process and with 2 processes sharing the work (one generator per process). Also
prints the mean time per stage of one sample on one process, and how far off the optical axis
the synthetic people are (the crop's view differs from the camera frame by that angle). Prints
markdown tables with the machine, the date and the body model.
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing as mp
import os
import time

import numpy as np


def _work(args: tuple[str, int, int, int, int]) -> tuple[float, float]:
    """Run ``kind`` on indices start..start+n-1 after a warm-up; (wall, CPU) seconds timed."""
    kind, size, seed, start, n = args
    from hmrt.train.data.augment import AugmentConfig
    from hmrt.train.data.dataset import SyntheticDataset
    from hmrt.train.data.shards import encode_sample
    from hmrt.train.data.synth import SynthConfig, limit_blas_threads

    limit_blas_threads()  # as every data worker does
    ds = SyntheticDataset(SynthConfig(width=size, height=size), seed=seed, augment=AugmentConfig())
    gen = ds.generator
    for i in range(3):  # warm-up: JIT, photo loading, caches
        ds[10_000_000 + i]
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(start, start + n):
        if kind == "generator":
            gen.sample(i)
        elif kind == "generator + encode":
            encode_sample(gen.sample(i))
        else:
            ds[i]
    return time.perf_counter() - t0, time.process_time() - c0


def _rate(kind: str, procs: int, n: int, size: int) -> tuple[float, float]:
    """(samples/s wall clock, samples per CPU-second of one process) for ``procs`` processes."""
    per = n // procs
    jobs = [(kind, size, 0, k * per, per) for k in range(procs)]
    if procs == 1:
        times = [_work(jobs[0])]
    else:
        with mp.get_context("fork").Pool(procs) as pool:
            times = pool.map(_work, jobs)
    # Processes run concurrently: throughput is all samples over the slowest process's time.
    wall = per * procs / max(t[0] for t in times)
    cpu = per * procs / sum(t[1] for t in times)
    return wall, cpu


def _stages(size: int, n: int) -> list[tuple[str, float]]:
    """Mean CPU milliseconds per stage of SyntheticGenerator.sample on one process."""
    from hmrt.runtime.render import rasterize
    from hmrt.runtime.render.maps import interpolate_corners, iuv
    from hmrt.runtime.rotations import axis_angle_to_matrix
    from hmrt.train.data.synth import (
        SynthConfig,
        SyntheticGenerator,
        camera_rotation,
        limit_blas_threads,
    )

    limit_blas_threads()
    gen = SyntheticGenerator(SynthConfig(width=size, height=size), seed=0)
    gen.sample(0)
    acc: dict[str, float] = {}

    def tic(name: str, t0: float) -> float:
        t1 = time.process_time()
        acc[name] = acc.get(name, 0.0) + (t1 - t0)
        return t1

    for i in range(1, n + 1):
        rng = gen.rng(i)
        t = time.process_time()
        root = camera_rotation(rng.uniform(0, 20), 0.0) @ axis_angle_to_matrix(
            np.array([0.0, rng.uniform(-3, 3), 0.0])
        )
        _, _, verts, joints = gen.sample_body(rng, root)
        t = tic("pose + shape + LBS (+ collision retries)", t)
        K, transl = gen.place(rng, verts, joints)
        vc, jc = (verts + transl).astype(np.float32), (joints + transl).astype(np.float32)
        t = tic("camera placement", t)
        app = gen.appearance.sample(rng)
        t = tic("appearance sampling", t)
        bg = gen.backgrounds.sample(rng, size, size)
        t = tic("background", t)
        raster = rasterize(vc, gen.faces, K, size, size)
        t = tic("rasterize", t)
        iuv(raster, gen.body.dp_I, gen.body.dp_uv)
        interpolate_corners(raster.face_id, raster.bary, gen.cont_corners)
        t = tic("part/UV/continuous-UV maps", t)
        gen.appearance.shade(app, vc, raster.face_id, raster.bary)
        t = tic("texture + shading", t)
        gen.render(rng, vc, jc, K, app, bg)
        tic("render() total (raster, maps, shading, compositing, occluders, effects)", t)
    return [(k, 1000.0 * v / n) for k, v in acc.items()]


def _off_axis(size: int, n: int) -> np.ndarray:
    """Angle (degrees) between the optical axis and the ray to the pelvis, over n samples."""
    from hmrt.train.data.synth import SynthConfig, SyntheticGenerator

    gen = SyntheticGenerator(SynthConfig(width=size, height=size), seed=0)
    p = np.stack([gen.sample(i)["joints3d"][0] for i in range(n)]).astype(np.float64)
    return np.degrees(np.arccos(p[:, 2] / np.linalg.norm(p, axis=1)))


def main() -> None:
    """Parse arguments, run the measurements and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="samples per measurement")
    parser.add_argument("--size", type=int, default=224, help="image side")
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2], help="process counts")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from hmrt.runtime.body import BodyModel

    body = BodyModel()
    print(f"# Synthetic data engine, {args.size}x{args.size}")
    from hmrt.runtime.stats import machine_line

    print(f"- machine: {machine_line()}")
    print(f"- date: {datetime.date.today().isoformat()}")
    print(f"- body: {body.path.name} ({body.n_verts} vertices, {body.n_faces} faces, {body.hash})")
    print(f"- command: python bench/bench_synth.py --n {args.n} --size {args.size}")
    print(f"- load average before: {os.getloadavg()[0]:.1f} (other processes share the cores)")
    print()
    heads = [f"{p} process{'es' if p > 1 else ''}" for p in args.procs]
    print("| workload | " + " | ".join(heads) + " | per CPU-second (one process) |")
    print("|---|" + "---:|" * (len(args.procs) + 1))
    for kind in ("generator", "generator + encode", "training item"):
        rates = [_rate(kind, p, args.n, args.size) for p in args.procs]
        cells = [f"{wall:.0f} samples/s" for wall, _ in rates]
        cells.append(f"{rates[0][1]:.0f} samples")
        print(f"| {kind} | " + " | ".join(cells) + " |")
    print(f"\n- load average after: {os.getloadavg()[0]:.1f}")
    print()
    print("| stage (1 process) | CPU ms / sample |")
    print("|---|---:|")
    for name, ms in _stages(args.size, max(20, args.n // 5)):
        print(f"| {name} | {ms:.2f} |")
    angles = _off_axis(args.size, 200)
    q = np.percentile(angles, [50, 90, 100])
    print()
    print(
        f"Off-axis angle of the person (optical axis to pelvis ray), 200 samples: "
        f"median {q[0]:.1f}, 90th percentile {q[1]:.1f}, max {q[2]:.1f} degrees."
    )


if __name__ == "__main__":
    main()
