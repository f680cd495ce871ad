"""``hmrt eval``: accuracy of a checkpoint on synth-val or a SPIN-style npz (MPJPE, PA-MPJPE, PVE).

Prints one table: the model and, for scale, the mean-pose/mean-shape baseline (an image-blind
constant: the evaluation set's mean body). ``--json`` also writes the numbers. The loop is
:func:`hmrt.train.evaluate.evaluate`, which takes predict functions, so ONNX/TensorRT graphs
can be scored on the same batches. The ``hmrt eval`` command (:mod:`hmrt.commands.eval`) adds
``--precision-report`` on top of these flags.
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Register ``hmrt eval``'s flags."""
    p.add_argument("--checkpoint", metavar="PATH", help="a .pt from hmrt train (required)")
    p.add_argument(
        "--data",
        default="synth-val",
        metavar="SPEC",
        help="synth-val (default) | SPIN .npz | shards",
    )
    p.add_argument(
        "--img-root", metavar="DIR", help="image folder of .npz data (default: its folder)"
    )
    p.add_argument("--body", metavar="NPZ", help="body-model file the checkpoint was trained with")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--samples", type=int, default=0, help="evaluate the first N items only")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--workers", type=int, default=0, help="data-loader processes")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument("--no-baseline", action="store_true", help="skip the mean-pose baseline row")
    p.add_argument("--json", metavar="OUT", help="also write the metrics as JSON")


def run(args: argparse.Namespace) -> int:
    """Load the checkpoint, evaluate, print the table."""
    import json

    import torch

    from hmrt.runtime.atomic import write_text_atomic
    from hmrt.runtime.errors import InputError
    from hmrt.train.checkpoint import load_checkpoint
    from hmrt.train.evaluate import evaluate, fit_predictor, gt_body_layer, torch_predictor
    from hmrt.train.sources import eval_dataset

    if args.checkpoint is None:
        raise InputError("hmrt eval needs --checkpoint PATH (or --precision-report --model NAME)")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda was requested but this torch has no usable CUDA GPU")
    model = load_checkpoint(args.checkpoint, device=device, body=args.body)
    data = eval_dataset(args.data, model, args.samples, args.img_root)
    body = gt_body_layer(model)  # poses the labels' meshes (DecoMR has no LBS of its own)
    predictors = {"model": torch_predictor(model, device)}
    fit = fit_predictor(model, predictors["model"], device)
    if fit is not None:  # BoBW: GIK-Net's body parameters, scored as a row of their own
        label, fit_fn, predictors["model"] = fit
        predictors[label] = fit_fn
    result = evaluate(
        predictors,
        data,
        body=body,
        batch_size=args.batch_size,
        workers=args.workers,
        max_samples=args.samples,
        baseline=not args.no_baseline,
    )
    name = getattr(model, "config", None)
    title = f"{args.checkpoint} on {args.data}"
    if name is not None:
        title += f" ({name.name}/{name.variant})"
    print(result.table(title))
    if args.json:
        write_text_atomic(args.json, json.dumps(result.metrics, indent=2) + "\n")
    return 0
