"""Benchmark of one training step (forward + criterion + backward + Adam) per torch thread count.

Run from the repository root: ``python bench/bench_train_step.py [--model danet:edge]
[--batch 16] [--threads 1 2] [--steps 5]``. Prints a markdown table with the machine, the load
average and the median step time / samples per second for each thread count, on random input
and synthetic-shaped labels (no data loading), so it isolates the model's cost. On a shared,
oversubscribed CPU the 1-thread row is usually the faster one: every OpenMP region waits for a
descheduled second thread.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time


def _batch(model, n: int):
    import torch

    from hmrt.train.rotations import axis_angle_to_matrix

    h, w = model.config.input_size
    fh, fw = getattr(model.config, "feat_size", (h // 4, w // 4))
    g = torch.Generator().manual_seed(0)
    index = torch.randint(0, 25, (n, fh, fw), generator=g)
    return {
        "image": torch.randn(n, 3, h, w, generator=g),
        "rotmats": axis_angle_to_matrix(torch.randn(n, 24, 3, generator=g) * 0.3),
        "betas": torch.randn(n, 10, generator=g),
        "joints3d": torch.randn(n, 24, 3, generator=g) * 0.3,
        "joints2d": torch.rand(n, 24, 2, generator=g) * 1.6 - 0.8,
        "joints2d_vis": torch.ones(n, 24),
        "iuv_index": index,
        "iuv_u": torch.rand(n, fh, fw, generator=g) * (index > 0),
        "iuv_v": torch.rand(n, fh, fw, generator=g) * (index > 0),
        "has_smpl": torch.ones(n),
        "has_3d": torch.ones(n),
        "has_iuv": torch.ones(n),
    }


def run(spec: str, batch: int, threads: int, steps: int) -> tuple[float, float]:
    """Median seconds per step and samples/s for ``spec`` (``name:variant``) at ``threads``."""
    import torch

    from hmrt.train.losses import DanetCriterion
    from hmrt.train.models import build

    torch.set_num_threads(threads)
    name, variant = spec.split(":")
    torch.manual_seed(0)
    model = build(name, variant).train()
    crit = DanetCriterion.for_model(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    b = _batch(model, batch)
    times = []
    for _ in range(steps + 1):  # the first step warms up allocators and kernels
        t0 = time.perf_counter()
        loss, _ = crit(model(b["image"]), b)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times[1:])
    return med, batch / med


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="danet:edge")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    load = os.getloadavg()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load {load[0]:.1f}; {datetime.date.today()}"
    )
    print("| model | batch | threads | s/step (median) | samples/s |")
    print("| --- | --- | --- | --- | --- |")
    for t in args.threads:
        med, sps = run(args.model, args.batch, t, args.steps)
        print(f"| {args.model} | {args.batch} | {t} | {med:.2f} | {sps:.1f} |")


if __name__ == "__main__":
    main()
