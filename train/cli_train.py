"""``hmrt train``: train a zoo model on synthetic and/or SPIN-style data (one GPU, CPU or DDP).

Configuration precedence: built-in defaults < ``--config YAML`` < command-line flags. With
``--resume`` the run's own ``last.pt`` config is the base and only flags given explicitly
override it (e.g. ``--steps`` to extend a finished run). Multi-GPU: launch the same command
under ``torchrun --nproc_per_node G -m hmrt.train.cli_train ...`` (see docs/TRAINING.md).
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Register ``hmrt train``'s flags (defaults None: "not given", so YAML values survive)."""
    p.add_argument("--model", help="registry name (default danet)")
    p.add_argument("--variant", help="model variant: paper | edge (default edge)")
    p.add_argument(
        "--data",
        action="append",
        metavar="SPEC",
        help="training data, repeatable: synth | shard directory (hmrt synth --out) | SPIN .npz",
    )
    p.add_argument("--body", metavar="NPZ", help="body-model file (default: the bundled model)")
    p.add_argument("--val-data", metavar="SPEC", help="validation set (default synth-val)")
    p.add_argument(
        "--img-root", metavar="DIR", help="image folder of .npz data (default: its folder)"
    )
    p.add_argument(
        "--out", required=True, metavar="RUN_DIR", help="run directory (logs, checkpoints)"
    )
    length = p.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, help="total optimiser steps")
    length.add_argument("--epochs", type=int, help="total epochs (default 10)")
    p.add_argument("--batch-size", type=int, help="per-process batch size (default 16)")
    p.add_argument("--lr", type=float, help="peak learning rate (default 1e-4)")
    p.add_argument("--resume", action="store_true", help="continue RUN_DIR/last.pt exactly")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--workers", type=int, help="data-loader processes per rank (default 2)")
    p.add_argument("--config", metavar="YAML", help="training config file (see docs/TRAINING.md)")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--amp", choices=("auto", "bf16", "fp16", "off"), help="mixed precision")
    p.add_argument("--threads", type=int, help="torch CPU threads per process")
    p.add_argument("--eval-every", type=int, help="steps between evaluations (default: per epoch)")
    p.add_argument("--log-every", type=int, help="steps between log rows (default 20)")
    p.add_argument("--ckpt-every", type=int, help="steps between last.pt checkpoints")
    p.add_argument("--val-samples", type=int, help="evaluate on the first N validation items")
    p.add_argument("--synth-epoch", type=int, help="synthetic samples per epoch (default 8192)")
    p.add_argument("--pretrain-iuv-steps", type=int, help="IUV-only warm-up steps (DaNet: 5000)")
    p.add_argument(
        "--init",
        metavar="CKPT",
        help="start from this checkpoint's weights (a new training stage; fresh optimiser)",
    )
    p.add_argument(
        "--init-module",
        metavar="PREFIX=CKPT[:SRC]",
        action="append",
        help="after --init, take the weights under module PREFIX from CKPT (repeatable; e.g. "
        "bobw's IK nets: ik=runs/bobw_edge/ik/last.pt), or from CKPT's module SRC of another "
        "model (hkmr's encoder: backbone=assets/weights/danet_edge.pt:img2iuv.iuv_est.body)",
    )
    p.add_argument(
        "--freeze",
        metavar="PREFIX",
        action="append",
        help="keep the parameters under this module prefix fixed, BatchNorm in eval mode "
        "(repeatable; e.g. img2iuv trains only DaNet's stage 2)",
    )
    p.add_argument(
        "--stage",
        choices=("dmp", "ik", "uvi", "all"),
        help="bobw: the training stage (the paper trains DMP, IK and UVI in turn; all chains "
        "them in RUN_DIR/dmp, ik, uvi)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")


FLAG_TO_KEY = {
    "model": "model",
    "variant": "variant",
    "body": "body",
    "data": "data",
    "val_data": "val_data",
    "steps": "steps",
    "epochs": "epochs",
    "batch_size": "batch_size",
    "seed": "seed",
    "workers": "workers",
    "device": "device",
    "amp": "amp",
    "threads": "threads",
    "eval_every": "eval_every",
    "ckpt_every": "ckpt_every",
    "log_every": "log_every",
    "val_samples": "val_samples",
    "synth_epoch": "synth_epoch",
    "pretrain_iuv_steps": "pretrain_iuv_steps",
    "init": "init",
    "freeze": "freeze",
    "stage": "stage",
}


def flag_overrides(args: argparse.Namespace) -> dict:
    """The config keys set explicitly on the command line."""
    over = {
        k: getattr(args, f) for f, k in FLAG_TO_KEY.items() if getattr(args, f, None) is not None
    }
    if args.steps is not None:
        over["epochs"] = 0
    if args.epochs is not None:
        over["steps"] = 0
    if args.lr is not None:
        over["optim"] = {"lr": args.lr}
    if getattr(args, "init_module", None):
        from hmrt.runtime.errors import InputError

        pairs = {}
        for item in args.init_module:
            prefix, sep, path = item.partition("=")
            if not sep or not prefix or not path:
                raise InputError(
                    f"--init-module {item!r}: use PREFIX=CHECKPOINT, e.g. ik=run/last.pt"
                )
            pairs[prefix] = path
        over["init_modules"] = pairs
    return over


def assemble_config(args: argparse.Namespace):
    """Defaults < YAML < flags (or, resuming: the run's config < flags)."""
    from pathlib import Path

    from hmrt.train.checkpoint import read_checkpoint
    from hmrt.train.config import TrainConfig, load_yaml, merge

    if args.resume:
        base = read_checkpoint(Path(args.out) / "last.pt")["train_config"]
    else:
        given = load_yaml(args.config) if args.config else {}
        # The defaults depend on the model (each has its own loss terms), so pick it first.
        model = args.model or given.get("model") or TrainConfig.model
        base = merge(TrainConfig(model=model).to_dict(), given)
    return TrainConfig.from_dict(merge(base, flag_overrides(args)))


def check_run_dir(out: str, resume: bool) -> None:
    """Refuse to overwrite a run, or to resume one that does not exist (before any heavy work)."""
    from pathlib import Path

    from hmrt.runtime.errors import InputError

    last = Path(out) / "last.pt"
    if resume and not last.is_file():
        raise InputError(f"--resume: {last} does not exist; start without --resume")
    if not resume and last.is_file():
        raise InputError(
            f"{out} already holds a run (last.pt); pass --resume or choose a new --out"
        )


def run(args: argparse.Namespace) -> int:
    """Build everything from the config and train; prints the final validation table."""
    from hmrt.train.config import STAGED_MODELS

    check_run_dir(args.out, args.resume)
    cfg = assemble_config(args)
    if cfg.model in STAGED_MODELS:
        from hmrt.train.bobw.stages import run_staged

        return run_staged(cfg, args)
    fit(cfg, args.out, args)
    return 0


def fit(cfg, out: str, args: argparse.Namespace, prepare=None) -> dict:
    """One training run of ``cfg`` in ``out``; ``prepare(model)`` (optional) adjusts the built
    model before the criterion and the trainer are made (a stage's settings). Returns the final
    validation metrics."""
    import torch

    from hmrt.train import distributed as D
    from hmrt.train.losses import build_criterion
    from hmrt.train.models.registry import build
    from hmrt.train.sources import describe, eval_dataset, train_sources
    from hmrt.train.trainer import Trainer, resolve_device

    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    want_cuda = cfg.device.startswith("cuda") or (
        cfg.device == "auto" and torch.cuda.is_available()
    )
    dist = D.init_from_env("cuda" if want_cuda else "cpu")
    metrics: dict = {}
    try:
        resolve_device(cfg.device, dist)  # fail early with a clear message
        torch.manual_seed(cfg.seed)  # identical initial weights on every rank
        model = build(cfg.model, cfg.variant, body=cfg.body or None, **cfg.model_overrides)
        if cfg.init and not args.resume:
            from hmrt.train.checkpoint import load_weights_into

            load_weights_into(model, cfg.init)
        if cfg.init_modules and not args.resume:
            from hmrt.train.checkpoint import load_module_weights_into

            for prefix, path in cfg.init_modules.items():
                load_module_weights_into(model, prefix, path)
        if prepare is not None:
            prepare(model)
        criterion = build_criterion(model, cfg.loss)
        sources = train_sources(cfg, model, args.img_root)
        val = None
        if cfg.val_data and cfg.val_data != "none":
            val = eval_dataset(cfg.val_data, model, cfg.val_samples, args.img_root)
        body = criterion.body
        trainer = Trainer(
            cfg,
            out,
            model,
            criterion,
            sources,
            val_set=val,
            body=body,
            resume=args.resume,
            progress=not args.no_progress,
            dist=dist,
        )
        if dist.is_main:
            counts = sum(p.numel() for p in model.parameters())
            stage = f" stage {cfg.stage}" if cfg.stage else ""
            print(
                f"hmrt train: {cfg.model}/{cfg.variant}{stage} ({counts / 1e6:.2f} M params) on "
                f"{trainer.device}, {dist.world} process(es), amp={trainer.amp}; data: "
                f"{describe(sources)}; {trainer.total_steps} steps of {cfg.batch_size} x "
                f"{dist.world}; from step {trainer.step}; run dir {out}",
                file=sys.stderr,
            )
        metrics = trainer.fit()
        if dist.is_main:
            skipped = sorted(criterion.skipped)
            if skipped:
                print(
                    f"hmrt train: terms without inputs (skipped): {', '.join(skipped)}",
                    file=sys.stderr,
                )
            if metrics:
                keys = ("mpjpe", "pa_mpjpe", "pve")
                print(
                    "final "
                    + ", ".join(f"{k}={metrics[k]:.1f}" for k in keys if k in metrics)
                    + f" mm; best {cfg.best_metric}={trainer.best:.1f} mm -> {out}/best.pt"
                )
    finally:
        D.cleanup(dist)
    return metrics


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``python -m hmrt.train.cli_train`` (how torchrun launches it)."""
    from hmrt.cli import main as hmrt_main

    return hmrt_main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
