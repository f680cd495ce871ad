"""``hmrt diagnose``: where a DaNet checkpoint's error comes from (:mod:`hmrt.train.diagnose`).

Argparse only at import time, like every subcommand module; torch loads when the command runs.
"""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``hmrt diagnose``'s flags."""
    parser.add_argument(
        "--checkpoint", required=True, help="DaNet checkpoint (hmrt train / weights)"
    )
    parser.add_argument(
        "--body", metavar="NPZ", help="body-model file the checkpoint was trained with"
    )
    parser.add_argument("--data", default="synth-val", help="synth-val or a shard directory")
    parser.add_argument("--samples", type=int, default=256, help="first N items (default 256)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--json", metavar="PATH", help="also write the numbers as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Load the checkpoint, score it on the data, print the report (and write the JSON)."""
    import torch

    from hmrt.runtime.atomic import write_text_atomic
    from hmrt.runtime.errors import InputError
    from hmrt.train.checkpoint import load_checkpoint
    from hmrt.train.diagnose import diagnose, format_report
    from hmrt.train.sources import eval_dataset

    if args.samples < 1:
        raise InputError(f"--samples {args.samples}: give a positive number of items")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    model = load_checkpoint(args.checkpoint, body=args.body)
    if not hasattr(model, "img2iuv"):
        raise InputError(f"{args.checkpoint}: not a DaNet checkpoint; diagnose needs DaNet")
    dataset = eval_dataset(args.data, model, args.samples)
    try:
        res = diagnose(model, dataset, progress=not args.no_progress)
    except ValueError as exc:
        raise InputError(
            f"{args.data}: {exc}; diagnose needs dense labels (synth-val or synthetic shards)"
        ) from exc
    title = f"{args.checkpoint} on {args.data}"
    print(format_report(res, len(dataset), title))
    if args.json:
        payload = {"checkpoint": str(args.checkpoint), "data": args.data, "n": len(dataset)}
        write_text_atomic(args.json, json.dumps({**payload, "results": res}, indent=1) + "\n")
    return 0
