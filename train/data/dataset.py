"""Torch datasets of synthetic samples: made on the fly, or read back from ``hmrt synth`` shards.

Both turn a synthetic sample into training targets through :func:`.augment.make_targets` (the
same crop and augmentation as :class:`~hmrt.train.data.spin.SpinNpzDataset`), so batches from
every source share keys and shapes. Synthetic 2D joints count as visible (``joints2d_vis`` = 1)
where they fall inside the crop: their position is exact even when hidden or cut off, but a crop
heatmap cannot point outside the crop.

Augmentation randomness is a pure function of ``(aug_seed, index)`` when ``aug_seed`` is set (the
default for synthetic data, whose indices never repeat in training); with ``aug_seed=None`` it
comes from numpy's global generator, which the trainer seeds per worker.
"""

from __future__ import annotations

import numpy as np
from torch.utils.data import Dataset

from hmrt.train.data.augment import AugmentConfig, AugParams, make_targets, sample_augmentation
from hmrt.train.data.synth import SynthConfig, SyntheticGenerator, limit_blas_threads


def _in_worker_setup() -> None:
    """Inside a DataLoader worker: one BLAS thread (see :func:`.synth.limit_blas_threads`)."""
    from torch.utils.data import get_worker_info

    if get_worker_info() is not None:
        limit_blas_threads()


def aug_rng(aug_seed: int | None, index: int) -> np.random.Generator:
    """The augmentation stream of one item (see the module docstring)."""
    if aug_seed is None:
        return np.random.default_rng(np.random.randint(0, 2**31 - 1))
    return np.random.default_rng([int(aug_seed), int(index), 0xA06])


def synthetic_targets(
    sample: dict,
    body,
    cfg: AugmentConfig,
    rng: np.random.Generator,
    index: int,
    aug: AugParams | None = None,
) -> dict:
    """Targets of one synthetic sample (a :meth:`SyntheticGenerator.sample` dict or a shard row).

    ``aug`` overrides the augmentation drawn from ``rng`` (tests, visualisation).
    """
    if aug is None:
        aug = sample_augmentation(rng, cfg)
    flip_joint = np.asarray(body.flip_joint)
    joints2d = np.array(sample["joints2d"], np.float64, copy=True)
    joints2d[:, 2] = 1.0
    out = make_targets(
        sample["image"],
        sample["center"],
        float(sample["scale"]),
        aug,
        cfg,
        flip_joint,
        joints2d,
        joints3d=sample["joints3d"],
        rotmats=sample["rotmats"],
        betas=sample["betas"],
        has_smpl=True,
        mesh={
            "vertices": sample["vertices"],
            "K": sample["K"],
            "body": body,
            "occluder_mask": sample.get("occluder_mask"),
        },
    )
    inside = np.all(np.abs(out["joints2d"]) <= 1.0, axis=1)
    out["joints2d_vis"] = inside.astype(np.float32)
    out["index"] = np.int64(index)
    return out


class SyntheticDataset(Dataset):
    """Synthetic training items generated on the fly: item ``i`` is generator sample ``offset+i``.

    ``length`` is nominal (what ``len()`` reports); any non-negative index is valid, so a sampler
    may read fresh samples every epoch. The generator is built lazily in each worker process.
    """

    def __init__(
        self,
        config: SynthConfig | None = None,
        seed: int = 0,
        length: int = 10000,
        augment: AugmentConfig | None = None,
        aug_seed: int | None = 0,
        offset: int = 0,
        body=None,
    ):
        self.config = config or SynthConfig()
        self.seed = int(seed)
        self.length = int(length)
        self.augment = augment or AugmentConfig()
        self.aug_seed = aug_seed
        self.offset = int(offset)
        self._body = body
        self._gen: SyntheticGenerator | None = None

    @property
    def generator(self) -> SyntheticGenerator:
        """The sample generator (created on first use in this process)."""
        if self._gen is None:
            _in_worker_setup()
            self._gen = SyntheticGenerator(self.config, self.seed, body=self._body)
        return self._gen

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_gen"] = None  # rebuilt in the worker: keeps pickling to workers cheap
        return state

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        if index < 0:
            raise IndexError(index)
        gen = self.generator
        sample = gen.sample(self.offset + int(index))
        rng = aug_rng(self.aug_seed, self.offset + int(index))
        return synthetic_targets(sample, gen.body, self.augment, rng, self.offset + int(index))


class ShardDataset(Dataset):
    """Training items read from an ``hmrt synth --out`` directory (see :mod:`.shards`).

    ``body`` must be the body model the shards were made with (checked by hash); vertices are
    recomputed from the stored rotations, betas and translation.
    """

    def __init__(
        self,
        root,
        augment: AugmentConfig | None = None,
        aug_seed: int | None = 0,
        body=None,
    ):
        from hmrt.runtime.body import BodyModel
        from hmrt.runtime.errors import InputError
        from hmrt.train.data.shards import ShardReader

        self.reader = ShardReader(root)
        self.augment = augment or AugmentConfig()
        self.aug_seed = aug_seed
        self.body = body if body is not None else BodyModel(self.reader.manifest.get("body_path"))
        want = self.reader.manifest.get("body_hash")
        if want and want != self.body.hash:
            raise InputError(
                f"{root}: shards were made with body model {want}, not {self.body.hash} "
                f"({self.body.path}); pass the same body model or regenerate the shards"
            )

    def __len__(self) -> int:
        return len(self.reader)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_worker_ready"] = False
        return state

    def raw(self, index: int) -> dict:
        """The stored sample ``index`` with ``vertices`` recomputed (no cropping)."""
        if not getattr(self, "_worker_ready", False):
            _in_worker_setup()
            self._worker_ready = True
        s = self.reader[index]
        verts, _ = self.body.forward(s["rotmats"][None], s["betas"][None])
        s["vertices"] = verts[0] + s["transl"]
        return s

    def __getitem__(self, index: int) -> dict:
        s = self.raw(int(index))
        rng = aug_rng(self.aug_seed, s["index"])
        return synthetic_targets(s, self.body, self.augment, rng, s["index"])
