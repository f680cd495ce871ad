"""Deterministic, resumable sampling over one or more training sources.

Each epoch is a seeded permutation over all sources, split across DDP ranks; resuming at
``(epoch, batch)`` regenerates the same permutation and skips what was already seen, so the
data position is part of the checkpoint. Synthetic sources are *fresh*: epoch ``e`` reads
samples ``e * size ... (e + 1) * size - 1`` of the generator (a pure function of the index), so
training never repeats a synthetic sample. Items are ``(source, index)`` pairs that
:class:`MixedDataset` resolves.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Dataset, Sampler


class MixedDataset(Dataset):
    """Map ``(source, index)`` to ``sources[source][index]``; a plain dataset per source."""

    def __init__(self, sources: Sequence[Dataset]):
        self.sources = list(sources)

    def __getitem__(self, item):
        source, index = item
        return self.sources[source][index]

    def __len__(self) -> int:  # nominal; the sampler decides what is read
        return sum(len(s) for s in self.sources)


class EpochSampler(Sampler):
    """Per-rank stream of ``(source, index)`` for one epoch, starting at a given batch.

    ``sizes[i]`` samples of source ``i`` per epoch; ``fresh[i]`` offsets that source's indices by
    ``epoch * sizes[i]``. Every rank gets the same number of full batches (the tail is dropped,
    as DDP needs equal step counts).
    """

    def __init__(
        self,
        sizes: Sequence[int],
        fresh: Sequence[bool],
        batch_size: int,
        seed: int,
        rank: int = 0,
        world: int = 1,
    ):
        self.sizes = [int(s) for s in sizes]
        self.fresh = list(fresh)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.rank, self.world = rank, world
        self.epoch, self.start_batch = 0, 0
        total = sum(self.sizes)
        self.batches_per_epoch = total // (self.batch_size * world)
        if self.batches_per_epoch == 0:
            raise ValueError(
                f"{total} samples per epoch are fewer than one batch of {self.batch_size} "
                f"on each of {world} rank(s)"
            )

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch's permutation and the first batch to yield (for resuming)."""
        self.epoch, self.start_batch = int(epoch), int(start_batch)

    def _items(self) -> np.ndarray:
        offsets = np.cumsum([0, *self.sizes])
        rng = np.random.default_rng([self.seed, self.epoch])
        perm = rng.permutation(offsets[-1])
        per_rank = self.batches_per_epoch * self.batch_size
        return perm[self.rank :: self.world][:per_rank]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        offsets = np.cumsum([0, *self.sizes])
        flat = self._items()[self.start_batch * self.batch_size :]
        src = np.searchsorted(offsets, flat, side="right") - 1
        for g, s in zip(flat.tolist(), src.tolist()):
            local = g - int(offsets[s])
            if self.fresh[s]:
                local += self.epoch * self.sizes[s]
            yield s, local

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.start_batch) * self.batch_size
