"""``synth-val``: the fixed synthetic validation set that every accuracy number in hmrt refers to.

Definition (frozen; changing any of it makes a new set and old numbers incomparable):
:data:`SYNTH_VAL_SEED` = 20261121, :data:`SYNTH_VAL_SIZE` = 512 samples (indices 0..511),
:data:`SYNTH_VAL_CONFIG` (224x224 scenes, no truncated people, the training distribution
otherwise) and the bundled body model; items are unaugmented crops (SPIN box = 1.2 x the
person's box) normalised with the ImageNet mean/std.

The set is generated once and cached as shards under ``$HMRT_CACHE/synth-val-<key>`` (default
``~/.cache/hmrt``), written atomically (a complete directory or nothing), so repeated
evaluations only decode PNGs. :func:`synth_val_frames` yields the full scene frames with the
person's box, to evaluate an exported model through exactly the runtime's preprocessing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from hmrt.runtime import camera
from hmrt.runtime.atomic import atomic_dir
from hmrt.runtime.cache import cache_dir as hmrt_cache_dir
from hmrt.train.data.augment import AugmentConfig
from hmrt.train.data.synth import GENERATOR_VERSION, SynthConfig

SYNTH_VAL_SEED = 20261121
SYNTH_VAL_SIZE = 512
SYNTH_VAL_CONFIG = SynthConfig(truncation_prob=0.0)
"""The frozen generator settings of ``synth-val``."""


def synth_val_dir(cache_dir: str | os.PathLike | None = None, size: int = SYNTH_VAL_SIZE) -> Path:
    """Where the cached set lives (depends on the config, generator version, body and size)."""
    from hmrt.runtime.body import BodyModel

    body_hash = BodyModel(SYNTH_VAL_CONFIG.body_path).hash
    name = f"synth-val-v{GENERATOR_VERSION}-{SYNTH_VAL_CONFIG.key()}-{body_hash[:8]}-{size}"
    return Path(cache_dir) / name if cache_dir else hmrt_cache_dir() / name


def ensure_synth_val(
    cache_dir: str | os.PathLike | None = None,
    size: int = SYNTH_VAL_SIZE,
    workers: int = 1,
    progress: bool = True,
) -> Path:
    """Generate the set into the cache unless it is already there; returns its directory.

    ``size`` below 512 asks for the first ``size`` samples (quick checks, tests): a cached set
    of at least that size is reused (its first ``size`` items are the same samples), otherwise
    only ``size`` samples are generated. The directory may therefore hold more than ``size``.
    """
    from hmrt.train.data.generate import generate_shards
    from hmrt.train.data.shards import MANIFEST

    path = synth_val_dir(cache_dir, size)
    prefix = path.name[: path.name.rindex("-") + 1]
    cached = [
        (int(p.name[len(prefix) :]), p)
        for p in path.parent.glob(prefix + "*")
        if p.name[len(prefix) :].isdigit() and (p / MANIFEST).is_file()
    ]
    big_enough = sorted(c for c in cached if c[0] >= size)
    if big_enough:
        return big_enough[0][1]
    with atomic_dir(path) as tmp:
        generate_shards(
            tmp, size, SYNTH_VAL_SEED, SYNTH_VAL_CONFIG, workers=workers, progress=progress
        )
    return path


def synth_val_dataset(
    cache_dir: str | os.PathLike | None = None,
    size: int = SYNTH_VAL_SIZE,
    augment: AugmentConfig | None = None,
    workers: int = 1,
):
    """The validation set (its first ``size`` items) as a Dataset of unaugmented items."""
    from dataclasses import replace

    from torch.utils.data import Subset

    from hmrt.train.data.dataset import ShardDataset

    aug = replace(augment or AugmentConfig(), train=False)
    ds = ShardDataset(ensure_synth_val(cache_dir, size, workers), augment=aug)
    return ds if len(ds) == size else Subset(ds, range(size))


def synth_val_frames(
    cache_dir: str | os.PathLike | None = None, size: int = SYNTH_VAL_SIZE
) -> Iterator[dict]:
    """Full validation frames for runtime-level evaluation.

    Yields ``frame`` (BGR uint8, as a camera delivers it), ``box`` (cx, cy, side) = the same
    crop the dataset uses (``camera.box_from_bbox(bbox, 1.2)``), ``bbox``, ``K`` and the ground
    truth ``joints3d`` / ``vertices`` (camera frame) and ``rotmats`` / ``betas`` / ``transl``.
    """
    from hmrt.runtime.body import BodyModel
    from hmrt.train.data.shards import ShardReader

    reader = ShardReader(ensure_synth_val(cache_dir, size))
    body = BodyModel(SYNTH_VAL_CONFIG.body_path)
    for i in range(size):
        s = reader[i]
        verts, _ = body.forward(s["rotmats"][None], s["betas"][None])
        yield {
            "frame": np.ascontiguousarray(s["image"][..., ::-1]),
            "box": camera.box_from_bbox(s["bbox"], 1.2),
            "bbox": s["bbox"],
            "K": s["K"],
            "joints3d": s["joints3d"],
            "vertices": verts[0] + s["transl"],
            "rotmats": s["rotmats"],
            "betas": s["betas"],
            "transl": s["transl"],
            "index": s["index"],
        }
