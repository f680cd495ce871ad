"""``hmrt synth``: write synthetic training shards, or a smooth demo clip with ground truth.

hmrt synth --out DIR --n N [--seed S] [--size 224 | WxH] [--workers K] [--shard-size 256]
hmrt synth --video OUT.mp4 [--frames 120] [--seed S] [--size 640x480] [--fps 30]
"""

from __future__ import annotations

import argparse


def _size(text: str) -> tuple[int, int]:
    """``224`` -> (224, 224); ``640x480`` -> (640, 480) as (width, height)."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) < 16:
        raise argparse.ArgumentTypeError(f"size must be N or WxH with sides >= 16, got {text!r}")
    return parts[0], parts[1]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``hmrt synth`` options."""
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--out", metavar="DIR", help="write training shards into DIR")
    mode.add_argument("--video", metavar="OUT.mp4", help="write a smooth clip + OUT.gt.npz")
    parser.add_argument("--n", type=int, default=1024, help="samples to write (--out)")
    parser.add_argument("--start", type=int, default=0, help="first sample index (--out)")
    parser.add_argument("--frames", type=int, default=120, help="clip length (--video)")
    parser.add_argument("--fps", type=float, default=30.0, help="clip frame rate (--video)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--size", type=_size, default=None, help="image size N or WxH (224 / 640x480)"
    )
    parser.add_argument("--workers", type=int, default=1, help="generator processes (--out)")
    parser.add_argument("--shard-size", type=int, default=256, help="samples per shard (--out)")
    parser.add_argument(
        "--body", default=None, help="body model npz (default: the bundled open model)"
    )
    parser.add_argument("--force", action="store_true", help="replace an existing shard set")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Generate what was asked; returns the exit code."""
    from pathlib import Path

    from hmrt.runtime.errors import InputError
    from hmrt.train.data.synth import limit_blas_threads

    limit_blas_threads()  # this process only generates data
    if args.video:
        from hmrt.train.data.video import write_clip

        video, gt = write_clip(
            args.video,
            frames=args.frames,
            seed=args.seed,
            size=args.size or (640, 480),
            fps=args.fps,
            body_path=args.body,
            progress=not args.quiet,
        )
        print(f"wrote {video} ({args.frames} frames) and {gt}")
        return 0

    from hmrt.train.data.generate import generate_shards
    from hmrt.train.data.shards import MANIFEST
    from hmrt.train.data.synth import SynthConfig

    if args.n < 1 or args.workers < 1 or args.shard_size < 1:
        raise InputError("--n, --workers and --shard-size must be >= 1")
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        if not (out / MANIFEST).is_file():
            raise InputError(f"{out}: exists and is not a shard directory; choose another --out")
        if not args.force:
            raise InputError(f"{out}: already holds shards; pass --force to replace them")
        for old in out.glob("shard-*.npz"):
            old.unlink()
        (out / MANIFEST).unlink()
    w, h = args.size or (224, 224)
    config = SynthConfig(width=w, height=h, body_path=args.body)
    generate_shards(
        out,
        args.n,
        seed=args.seed,
        config=config,
        workers=args.workers,
        shard_size=args.shard_size,
        start=args.start,
        progress=not args.quiet,
    )
    print(f"wrote {args.n} samples to {out}")
    return 0
