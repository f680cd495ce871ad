"""Sharded storage of synthetic samples (``hmrt synth --out``) and its reader.

A shard directory holds ``shard-00000.npz``, ``shard-00001.npz``, ... and ``manifest.json``
(written last: a directory without it is incomplete). Each shard is a plain-array npz
(``allow_pickle=False``) with, for its ``n`` samples:

* ``image_png`` (bytes,) u8 + ``image_offsets`` (n+1,) i64: PNG-encoded RGB images (lossless,
  about half the size of raw pixels, fast to decode);
* ``occluder_png`` + ``occluder_offsets``: PNG-encoded occluder masks;
* ``index`` (n,) the generator index of each sample, and the labels of
  :class:`~hmrt.train.data.synth.SyntheticGenerator` stacked: ``joints2d`` (n,24,3),
  ``joints_visible``, ``joints3d``, ``rotmats``, ``pose``, ``betas``, ``transl``, ``K``,
  ``bbox``, ``center``, ``scale``.

Vertices and dense maps are not stored: the reader poses the body again (``vertices =
forward(rotmats, betas) + transl``, a few ms) and the dataset renders the dense targets in the
augmented crop anyway. The manifest records the generator config, seed, body-model hash and
generator version, and the reader refuses shards made with another body model.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from hmrt.runtime.atomic import atomic_path, write_text_atomic
from hmrt.runtime.errors import InputError

MANIFEST = "manifest.json"
FORMAT = "hmrt-synth-shards"
FORMAT_VERSION = 1
LABEL_KEYS = (
    "joints2d", "joints_visible", "joints3d", "rotmats", "pose", "betas", "transl", "K",
    "bbox", "center", "scale",
)  # fmt: skip


# Fast lossless settings: zlib level 1 with run-length matching (speed over size).
_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]


def encode_sample(sample: dict) -> dict:
    """Compact form of one generator sample: PNG bytes for the images plus the label arrays."""
    ok, img = cv2.imencode(".png", sample["image"][..., ::-1], _PNG)
    ok2, occ = cv2.imencode(".png", sample["occluder_mask"], _PNG)
    if not (ok and ok2):
        raise RuntimeError("PNG encoding failed")
    out = {k: np.asarray(sample[k]) for k in LABEL_KEYS}
    out["image_png"] = img.reshape(-1)
    out["occluder_png"] = occ.reshape(-1)
    return out


def _pack(blobs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(blobs) + 1, np.int64)
    offsets[1:] = np.cumsum([len(b) for b in blobs])
    return np.concatenate(blobs).astype(np.uint8), offsets


def write_shard(path: Path, indices: list[int], encoded: list[dict]) -> None:
    """Write one shard atomically from encoded samples."""
    arrays = {k: np.stack([e[k] for e in encoded]) for k in LABEL_KEYS}
    arrays["image_png"], arrays["image_offsets"] = _pack([e["image_png"] for e in encoded])
    arrays["occluder_png"], arrays["occluder_offsets"] = _pack([e["occluder_png"] for e in encoded])
    arrays["index"] = np.asarray(indices, np.int64)
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays)


def write_manifest(out: Path, info: dict, shards: list[dict]) -> Path:
    """Write ``manifest.json`` (last, atomically) describing a complete shard directory."""
    manifest = {"format": FORMAT, "version": FORMAT_VERSION, **info, "shards": shards}
    return write_text_atomic(out / MANIFEST, json.dumps(manifest, indent=1) + "\n")


def write_shards(
    out: str | os.PathLike,
    samples: Iterable[tuple[int, dict]],
    info: dict,
    shard_size: int = 256,
) -> Path:
    """Write ``(index, encoded sample)`` pairs as shards of ``shard_size`` plus the manifest."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    shards, buf_idx, buf = [], [], []

    def flush() -> None:
        name = f"shard-{len(shards):05d}.npz"
        write_shard(out / name, buf_idx, buf)
        shards.append({"file": name, "count": len(buf), "first": int(buf_idx[0])})
        buf_idx.clear()
        buf.clear()

    for index, enc in samples:
        buf_idx.append(int(index))
        buf.append(enc)
        if len(buf) == shard_size:
            flush()
    if buf:
        flush()
    return write_manifest(out, {**info, "n": sum(s["count"] for s in shards)}, shards)


def read_manifest(root: str | os.PathLike) -> dict:
    """The manifest of a shard directory, or an InputError naming the problem."""
    path = Path(root) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(
            f"{path}: not found; {root} is not a complete shard directory (write one with "
            "'hmrt synth --out DIR --n N')"
        ) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: unreadable manifest ({exc})") from None
    if manifest.get("format") != FORMAT or manifest.get("version") != FORMAT_VERSION:
        raise InputError(f"{path}: not an hmrt shard manifest of version {FORMAT_VERSION}")
    return manifest


class ShardReader:
    """Random access to the samples of a shard directory (a few shards cached in memory)."""

    def __init__(self, root: str | os.PathLike, cache_shards: int = 2):
        self.root = Path(root)
        self.manifest = read_manifest(self.root)
        counts = [s["count"] for s in self.manifest["shards"]]
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.cache_shards = cache_shards
        self._cache: OrderedDict[int, dict] = OrderedDict()

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_cache"] = OrderedDict()
        return state

    def _shard(self, k: int) -> dict:
        if k in self._cache:
            self._cache.move_to_end(k)
            return self._cache[k]
        path = self.root / self.manifest["shards"][k]["file"]
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {key: z[key] for key in z.files}
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: unreadable shard ({exc}); regenerate it") from None
        self._cache[k] = data
        while len(self._cache) > self.cache_shards:
            self._cache.popitem(last=False)
        return data

    def __getitem__(self, i: int) -> dict:
        """Sample ``i``: the label arrays plus decoded ``image`` and ``occluder_mask``."""
        if not 0 <= i < len(self):
            raise IndexError(i)
        k = int(np.searchsorted(self.offsets, i, side="right") - 1)
        data, j = self._shard(k), i - int(self.offsets[k])
        out = {key: data[key][j] for key in LABEL_KEYS}
        a, b = data["image_offsets"][j : j + 2]
        out["image"] = np.ascontiguousarray(
            cv2.imdecode(data["image_png"][a:b], cv2.IMREAD_COLOR)[..., ::-1]
        )
        a, b = data["occluder_offsets"][j : j + 2]
        out["occluder_mask"] = cv2.imdecode(data["occluder_png"][a:b], cv2.IMREAD_GRAYSCALE)
        out["index"] = int(data["index"][j])
        return out

    def __iter__(self) -> Iterator[dict]:
        for i in range(len(self)):
            yield self[i]
