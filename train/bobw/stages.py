"""``hmrt train --model bobw --stage dmp|ik|uvi|all``: the paper's separately trained modules.

The paper trains the DMP on images, the IK nets alone on (mocap) joints with noise and random
zeroing, then "fix[es] and concat[s] DMP and IK, and train[s] UVI" (seed-bobw.md §2.2):

* ``dmp``: the image trainer with the model stopped after the DMP (``model.stage = "dmp"``)
  and the DMP terms (IUV, dense location / joint / displacement maps);
* ``ik``: :func:`hmrt.train.bobw.ik_fit.run_ik_stage` on hmrt's pose sampler (no images); the
  run's ``last.pt``/``best.pt`` are whole-model checkpoints with the trained IK nets (and the
  ``--init`` weights, if any, for everything else);
* ``uvi``: the image trainer with ``dmp`` and ``ik`` frozen (BatchNorm in eval mode) and the UVI
  terms (UV maps, 3D/2D joints, displacement symmetry, consistency);
* ``all`` (the default): the three in turn in ``RUN_DIR/dmp``, ``RUN_DIR/ik``, ``RUN_DIR/uvi``,
  each starting from the previous stage's ``last.pt``, with ``stage_steps`` (YAML) giving each
  stage's length (default: ``steps`` for each image stage, the IK config's own for ``ik``).

One stage alone (``--stage dmp|ik|uvi``) takes its ``stage_steps`` entry too, unless ``--steps``
(or ``--epochs``) is given or the run resumes. ``stage_lr`` gives an image stage its own peak
learning rate (``optim.lr`` otherwise; ``--lr`` sets every stage's).
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

from hmrt.runtime.errors import InputError

IMAGE_STAGE_FREEZE = {"dmp": (), "uvi": ("dmp", "ik")}
"""Module prefixes each image stage keeps fixed."""


def _without_frozen(init_modules: dict[str, str], stage: str, has_init: bool) -> dict[str, str]:
    """``init_modules`` minus the warm starts of parts of a module ``stage`` keeps frozen (the
    YAML's ``dmp.body`` belongs to the dmp stage) when that module comes whole from ``--init``
    or from its own ``init_modules`` entry (``--init-module dmp=RUN/dmp/last.pt:dmp``)."""
    kept = {}
    for prefix, path in init_modules.items():
        top = prefix.split(".")[0]
        whole = has_init or top in init_modules
        if top in IMAGE_STAGE_FREEZE[stage] and prefix != top and whole:
            print(
                f"hmrt train: stage {stage}: not applying init_modules {prefix} ({top} is given whole)"
            )
            continue
        kept[prefix] = path
    return kept


def _stage_config(
    cfg, stage: str, init: str = "", steps: int | None = None, lr_from_flag: bool = False
):
    """A copy of ``cfg`` for one stage: its loss terms, frozen modules, start weights, length
    and learning rate (``stage_lr``, unless ``--lr`` set one)."""
    out = copy.deepcopy(cfg)
    out.stage = stage
    if stage in IMAGE_STAGE_FREEZE:
        out.loss.stage = stage
        out.freeze = sorted(set(out.freeze) | set(IMAGE_STAGE_FREEZE[stage]))
    if stage in out.stage_lr and not lr_from_flag:
        out.optim.lr = float(out.stage_lr[stage])
    if init:
        out.init = init
    if steps:
        out.steps, out.epochs = int(steps), 0
    return out


def run_ik(cfg, out: Path, progress: bool = True) -> dict:
    """The IK stage: train ``model.ik`` on sampled joints and save whole-model checkpoints."""
    import numpy as np
    import torch

    from hmrt.train.bobw.ik_fit import IKStageConfig, run_ik_stage
    from hmrt.train.checkpoint import load_module_weights_into, load_weights_into, save_checkpoint
    from hmrt.train.models.registry import build

    if (out / "last.pt").is_file():
        raise InputError(f"{out} already holds a run (last.pt); choose a new --out")
    fields = dict(cfg.ik)
    fields.setdefault("seed", cfg.seed)
    if cfg.threads > 0:
        fields.setdefault("threads", cfg.threads)
    if cfg.steps and cfg.stage == "ik":
        fields.setdefault("steps", cfg.steps)
    ik_cfg = IKStageConfig(**fields)
    torch.manual_seed(cfg.seed)
    model = build(cfg.model, cfg.variant, body=cfg.body or None, **cfg.model_overrides)
    if cfg.init:
        load_weights_into(model, cfg.init)
    for prefix, path in cfg.init_modules.items():
        load_module_weights_into(model, prefix, path)
    from hmrt.runtime.body.model import BodyModel

    root = BodyModel(model.body_path).J_regressor[0:1]
    print(
        f"hmrt train: {cfg.model}/{cfg.variant} stage ik ({sum(p.numel() for p in model.ik.parameters()) / 1e6:.2f} M "
        f"params), {ik_cfg.steps} steps of {ik_cfg.batch_size} sampled poses; run dir {out}",
        file=sys.stderr,
    )
    metrics = run_ik_stage(
        model.ik,
        model.ik_body.layer,
        model.lsp_regressor,
        ik_cfg,
        out,
        progress=progress,
        root_regressor=torch.tensor(np.array(root, dtype=np.float32)),
    )
    model.ik.eval()
    for name in ("last.pt", "best.pt"):
        save_checkpoint(out / name, model, train_config=cfg.to_dict(), metrics=metrics)
    print(
        "final IK (noisy, 30% occluded joints): J_initial {:.1f} mm -> J_refine {:.1f} mm; IK "
        "mesh PA-MPJPE {:.1f} mm -> {}/best.pt".format(
            metrics["j_initial_mpjpe_mm"],
            metrics["j_refine_mpjpe_mm"],
            metrics["mesh_pa_mpjpe_mm"],
            out,
        )
    )
    return metrics


def run_staged(cfg, args: argparse.Namespace) -> int:
    """Run the stage(s) ``cfg.stage`` names (``""``: all) of a staged model."""
    from hmrt.train.cli_train import fit

    stage = cfg.stage or "all"
    out = Path(args.out)
    if stage == "ik":
        if args.resume:
            raise InputError("--resume: the IK stage restarts (it is short); drop --resume")
        if args.steps is None and "ik" in cfg.stage_steps:
            cfg = copy.deepcopy(cfg)
            cfg.ik = {**cfg.ik, "steps": cfg.stage_steps["ik"]}
        run_ik(cfg, out, progress=not args.no_progress)
        return 0
    if stage in IMAGE_STAGE_FREEZE:
        flags_decide = args.steps is not None or args.epochs is not None or args.resume
        steps = None if flags_decide else cfg.stage_steps.get(stage)  # the YAML's stage_steps
        stage_cfg = _stage_config(cfg, stage, steps=steps, lr_from_flag=args.lr is not None)
        if stage == "uvi":  # the DMP comes whole from --init, not the dmp stage's warm start
            stage_cfg.init_modules = _without_frozen(stage_cfg.init_modules, stage, bool(cfg.init))
        fit(stage_cfg, str(out), args, prepare=lambda m: m.set_stage(stage))
        return 0
    if args.resume:
        raise InputError(
            "--resume with --stage all: resume the unfinished stage itself, e.g. "
            f"hmrt train --stage uvi --resume --out {out / 'uvi'}"
        )
    steps = dict(cfg.stage_steps)
    init = cfg.init
    for name in ("dmp", "ik", "uvi"):
        sub = out / name
        stage_cfg = _stage_config(
            cfg, name, init=init, steps=steps.get(name), lr_from_flag=args.lr is not None
        )
        if name != "dmp":  # later stages start from the previous stage's weights only
            stage_cfg.init_modules = {}
        if name == "ik":
            if "ik" in steps:
                stage_cfg.ik = {**stage_cfg.ik, "steps": steps["ik"]}
            stage_cfg.steps = 0
            run_ik(stage_cfg, sub, progress=not args.no_progress)
        else:
            fit(stage_cfg, str(sub), args, prepare=lambda m, s=name: m.set_stage(s))
        init = str(sub / "last.pt")
    return 0
