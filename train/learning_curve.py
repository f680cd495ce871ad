"""Fit a power law to a run's validation curve and project the steps a target error needs.

``python -m hmrt.train.learning_curve --log EVAL_CSV[@OFFSET] [...] --target MM`` reads the
``eval_log.csv`` files ``hmrt train`` writes (a later training stage is placed after the earlier
ones with ``@OFFSET``, its first step), keeps the points from ``--min-step`` on and fits

* ``e(s) = b * s**-c`` (a straight line in log-log; no floor), and
* ``e(s) = a + b * s**-c`` (with a floor ``a``, chosen by least squares over a grid),

then prints the fitted error at a few step counts and the step count where each fit reaches the
target. Why: "how many more steps would it take" is the question behind every decision to train
longer on a slow machine, and a stated method beats a guess. The points come from restarted
cosine schedules, not one long schedule, so treat the projection as an order of magnitude.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class PowerLaw:
    """``e(s) = floor + scale * s**-exponent`` (``floor`` 0: a pure power law)."""

    floor: float
    scale: float
    exponent: float
    rms: float  # root-mean-square residual over the fitted points

    def __call__(self, steps: float | np.ndarray) -> float | np.ndarray:
        return self.floor + self.scale * np.power(steps, -self.exponent)

    def steps_for(self, target: float) -> float:
        """Steps at which the curve reaches ``target`` (inf if it never does)."""
        if target <= self.floor or self.exponent <= 0:
            return math.inf
        return float(((target - self.floor) / self.scale) ** (-1.0 / self.exponent))


def _loglog_fit(steps: np.ndarray, err: np.ndarray, floor: float) -> PowerLaw:
    slope, intercept = np.polyfit(np.log(steps), np.log(err - floor), 1)
    law = PowerLaw(floor, float(np.exp(intercept)), float(-slope), 0.0)
    rms = float(np.sqrt(np.mean((law(steps) - err) ** 2)))
    return PowerLaw(floor, law.scale, law.exponent, rms)


def fit_power_law(steps: Sequence[float], err: Sequence[float], with_floor: bool) -> PowerLaw:
    """Least-squares power law through ``(steps, err)``; the floor is grid-searched below min(err)."""
    s = np.asarray(steps, np.float64)
    e = np.asarray(err, np.float64)
    if len(s) < 3 or np.any(s <= 0) or np.any(e <= 0):
        raise ValueError("need at least 3 points with positive steps and errors")
    if not with_floor:
        return _loglog_fit(s, e, 0.0)
    floors = np.linspace(0.0, float(e.min()) * 0.99, 400)
    return min((_loglog_fit(s, e, a) for a in floors), key=lambda law: law.rms)


def read_curve(spec: str, metric: str) -> tuple[list[float], list[float]]:
    """``PATH[@OFFSET]`` -> (steps + offset, metric values) from an ``eval_log.csv``."""
    path, _, offset = spec.partition("@")
    try:
        shift = float(offset) if offset else 0.0
    except ValueError:
        raise ValueError(f"{spec}: the offset after '@' must be a number of steps") from None
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: no such eval log; pass RUN_DIR/eval_log.csv or a docs/logs file")
    with open(p, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or metric not in rows[0] or "step" not in rows[0]:
        raise ValueError(f"{p}: not an eval log with 'step' and '{metric}' columns")
    return [float(r["step"]) + shift for r in rows], [float(r[metric]) for r in rows]


def main(argv: list[str] | None = None) -> int:
    """Command line (one-line errors, exit code 2)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log", action="append", required=True, metavar="CSV[@OFFSET]")
    ap.add_argument("--metric", default="pa_mpjpe", help="eval_log column (default pa_mpjpe)")
    ap.add_argument("--min-step", type=float, default=2000.0, help="ignore earlier points")
    ap.add_argument("--target", type=float, required=True, help="error to reach (same unit)")
    args = ap.parse_args(argv)
    try:
        steps: list[float] = []
        err: list[float] = []
        for spec in args.log:
            s, e = read_curve(spec, args.metric)
            steps += s
            err += e
        keep = [i for i, s in enumerate(steps) if s >= args.min_step]
        steps, err = [steps[i] for i in keep], [err[i] for i in keep]
        laws = {
            "b * s^-c": fit_power_law(steps, err, with_floor=False),
            "a + b * s^-c": fit_power_law(steps, err, with_floor=True),
        }
    except ValueError as exc:
        print(f"learning_curve: error: {exc}", file=sys.stderr)
        return 2
    marks = [steps[-1], 2 * steps[-1], 50_000, 100_000, 250_000]
    print(f"{len(steps)} points, steps {steps[0]:.0f}..{steps[-1]:.0f}, {args.metric}")
    print(
        "| fit | a | b | c | rms | "
        + " | ".join(f"at {m:,.0f}" for m in marks)
        + " | steps to target |"
    )
    print("| --- " * (6 + len(marks)) + "|")
    for name, law in laws.items():
        at = " | ".join(f"{law(m):.1f}" for m in marks)
        need = law.steps_for(args.target)
        need_s = "never" if math.isinf(need) else f"{need:,.0f}"
        print(
            f"| {name} | {law.floor:.1f} | {law.scale:.4g} | {law.exponent:.3f} | {law.rms:.2f}"
            f" | {at} | {need_s} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
