"""Turn ``--data`` / ``--val-data`` specs into datasets for the trainer and ``hmrt eval``.

Specs: ``synth`` (the synthetic engine, fresh samples every epoch), ``synth-val`` (the frozen
validation set), a directory written by ``hmrt synth --out`` (shards), or a SPIN-style
``.npz`` (images under ``img_root``, default the npz's folder). Crops use the model's input
size and normalisation, and dense IUV targets are rendered at the model's IUV resolution.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn
from torch.utils.data import Dataset

from hmrt.runtime.errors import InputError
from hmrt.train.config import TrainConfig
from hmrt.train.trainer import Source


def augment_config(model: nn.Module | None, train: bool = True, overrides: dict | None = None):
    """The data pipeline's crop/normalisation settings for ``model`` (defaults without one).

    ``overrides`` (``TrainConfig.augment``) change augmentation ranges, e.g. ``rot_factor: 0``.
    """
    from dataclasses import fields

    from hmrt.train.data.augment import AugmentConfig

    kw: dict = {"train": train}
    if model is not None and hasattr(model, "config"):
        c = model.config
        kw.update(res=int(c.input_size[0]), mean=tuple(c.mean), std=tuple(c.std))
        feat = getattr(c, "feat_size", None)
        if feat is not None:
            kw["dense_res"] = int(feat[0])
    known = {f.name for f in fields(AugmentConfig)}
    bad = sorted(set(overrides or {}) - known)
    if bad:
        raise InputError(f"unknown augment key(s) {bad}; known: {sorted(known)}")
    kw.update(overrides or {})
    return AugmentConfig(**kw)


def train_sources(
    cfg: TrainConfig, model: nn.Module | None, img_root: str | None = None
) -> list[Source]:
    """One :class:`Source` per ``cfg.data`` entry."""
    aug = augment_config(model, train=True, overrides=cfg.augment)
    out: list[Source] = []
    for spec in cfg.data:
        if spec == "synth":
            from hmrt.train.data.dataset import SyntheticDataset

            body = None
            if cfg.body:
                from hmrt.runtime.body.model import BodyModel

                body = BodyModel(cfg.body)
            ds = SyntheticDataset(
                seed=cfg.seed, length=cfg.synth_epoch, augment=aug, aug_seed=cfg.seed, body=body
            )
            out.append(Source(ds, cfg.synth_epoch, fresh=True, name="synth"))
        elif spec == "synth-val":
            raise InputError("synth-val is the validation set; do not train on it (--data synth)")
        else:
            ds = _file_dataset(spec, aug, img_root, cfg.seed)
            out.append(Source(ds, len(ds), fresh=False, name=spec))
    if not out:
        raise InputError("no training data: pass --data synth and/or --data PATH")
    return out


def eval_dataset(
    spec: str, model: nn.Module | None, size: int = 0, img_root: str | None = None
) -> Dataset:
    """The evaluation set ``spec`` (unaugmented crops); ``size`` > 0 keeps the first items."""
    aug = augment_config(model, train=False)
    if spec == "synth-val":
        from hmrt.train.data.validation import SYNTH_VAL_SIZE, synth_val_dataset

        n = size if 0 < size < SYNTH_VAL_SIZE else SYNTH_VAL_SIZE
        return synth_val_dataset(size=n, augment=aug)
    if spec == "synth":
        raise InputError("evaluate on synth-val (the frozen set), not on the training stream")
    ds = _file_dataset(spec, aug, img_root, None)
    if 0 < size < len(ds):
        from torch.utils.data import Subset

        ds = Subset(ds, range(size))
    return ds


def _file_dataset(spec: str, aug, img_root: str | None, seed: int | None) -> Dataset:
    path = Path(spec)
    if path.is_dir():
        from hmrt.train.data.dataset import ShardDataset
        from hmrt.train.data.shards import MANIFEST

        if not (path / MANIFEST).is_file():
            raise InputError(
                f"{path}: no {MANIFEST}; pass a directory written by `hmrt synth --out`"
            )
        return ShardDataset(path, augment=aug, aug_seed=seed)
    if path.suffix == ".npz":
        if not path.is_file():
            raise InputError(f"{path}: SPIN npz file not found")
        from hmrt.train.data.spin import SpinNpzDataset

        root = Path(img_root) if img_root else path.parent
        return SpinNpzDataset(path, root, augment=aug, aug_seed=seed)
    raise InputError(
        f"unknown data '{spec}': use synth, synth-val, a shard directory or a SPIN .npz file"
    )


def describe(sources: list[Source]) -> str:
    """One line naming each source and its samples per epoch."""
    return ", ".join(
        f"{s.name or type(s.dataset).__name__} ({s.size}/epoch{', fresh' if s.fresh else ''})"
        for s in sources
    )
