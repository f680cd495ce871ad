"""``hmrt train-prior``: train HKMR's pose-prior VAE on the synthetic engine's poses.

Writes a run directory (``--out``; layout in :mod:`hmrt.train.prior.fit`) whose
``pose_prior.pt`` is the frozen encoder HKMR's KL term loads (``loss.prior`` in
train/configs/hkmr_edge_cpu.yaml). A bad ``--out`` (a file, a read-only folder) or an existing
run without ``--resume`` is refused before any work, with exit code 2.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Register ``hmrt train-prior``'s flags (defaults: :class:`PriorTrainConfig`'s)."""
    p.add_argument(
        "--out", required=True, metavar="RUN_DIR", help="run directory (poses, log, checkpoints)"
    )
    p.add_argument("--poses", type=int, help="training poses drawn from the engine (20000)")
    p.add_argument("--val-poses", type=int, help="held-out poses for validation (1000)")
    p.add_argument("--epochs", type=int, help="passes over the poses (30)")
    p.add_argument("--batch-size", type=int, help="poses per step (256)")
    p.add_argument("--lr", type=float, help="peak learning rate of AdamW (1e-3)")
    p.add_argument("--kl-weight", type=float, help="beta of the beta-VAE objective (5e-3)")
    p.add_argument("--latent", type=int, help="latent dimensions (32)")
    p.add_argument("--hidden", type=int, help="units per hidden layer (256)")
    p.add_argument("--seed", type=int, help="random seed (0)")
    p.add_argument("--ckpt-every", type=int, help="epochs between checkpoints (5)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument(
        "--resume", action="store_true", help="continue RUN_DIR/last.pt (--epochs may extend it)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


FLAGS = {
    "poses": "poses",
    "val_poses": "val_poses",
    "epochs": "epochs",
    "batch_size": "batch_size",
    "lr": "lr",
    "kl_weight": "kl_weight",
    "seed": "seed",
    "ckpt_every": "ckpt_every",
}


def config_from_args(args: argparse.Namespace):
    """:class:`PriorTrainConfig` from the flags given (the rest keep their defaults)."""
    from hmrt.train.prior.fit import PriorTrainConfig

    data = {key: getattr(args, f) for f, key in FLAGS.items() if getattr(args, f) is not None}
    model = {k: getattr(args, k) for k in ("latent", "hidden") if getattr(args, k) is not None}
    if model:
        data["model"] = model
    return PriorTrainConfig.from_dict(data)


def run(args: argparse.Namespace) -> int:
    """Check ``--out``, train, print the final numbers and the prior file's path and size."""
    from pathlib import Path

    from hmrt.runtime.atomic import check_writable
    from hmrt.runtime.errors import InputError

    out = check_writable(args.out, "dir", "--out")
    last = out / "last.pt"
    if args.resume and not last.is_file():
        raise InputError(f"--resume: {last} does not exist; start without --resume")
    if not args.resume and last.is_file():
        raise InputError(
            f"{out} already holds a prior run (last.pt); pass --resume or choose a new --out"
        )
    cfg = config_from_args(args)
    import torch

    from hmrt.train.prior.fit import PriorTrainer

    if args.threads:
        torch.set_num_threads(args.threads)
    trainer = PriorTrainer(cfg, out, resume=args.resume, progress=not args.no_progress)
    c = trainer.cfg
    print(
        f"hmrt train-prior: VAE {c.model.hidden}x{c.model.latent} on {c.poses} engine poses, "
        f"{c.epochs} epochs of {trainer.steps_per_epoch} steps, kl_weight {c.kl_weight:g}; "
        f"from epoch {trainer.epoch}; run dir {out}",
        file=sys.stderr,
    )
    m = trainer.fit()
    prior = Path(out) / "pose_prior.pt"
    print(
        f"epoch {int(m.get('epoch', 0))}: loss {m.get('loss', float('nan')):.4g} "
        f"(recon {m.get('recon', float('nan')):.4g}, kl {m.get('kl', float('nan')):.4g}); "
        f"val: joint error {m.get('val_error_deg', float('nan')):.2f} deg, "
        f"KL {m.get('val_kl', float('nan')):.1f} vs noise poses {m.get('noise_kl', float('nan')):.1f} "
        f"({100 * m.get('noise_above_p99', float('nan')):.1f}% of noise above the 99th percentile); "
        f"poses drawn in {m.get('pose_draw_s', 0.0):.0f} s ({m.get('pose_draw_cpu_s', 0.0):.0f} s "
        f"CPU), trained in {trainer.elapsed:.0f} s ({trainer.cpu:.0f} s CPU)"
    )
    print(f"prior: {prior} ({prior.stat().st_size / 1e6:.2f} MB)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``python -m hmrt.train.prior``."""
    from hmrt.cli import main as hmrt_main

    return hmrt_main(["train-prior", *(sys.argv[1:] if argv is None else argv)])
