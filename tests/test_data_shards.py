"""Shard round trip, ``hmrt synth --out/--video`` end to end, and the cached validation set."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from data_helpers import real_body_path, write_parts_body

from hmrt.runtime.body import BodyModel
from hmrt.train.data.dataset import ShardDataset, SyntheticDataset
from hmrt.train.data.generate import generate_shards
from hmrt.train.data.shards import LABEL_KEYS, ShardReader
from hmrt.train.data.synth import SynthConfig, SyntheticGenerator


@pytest.fixture(scope="module")
def body_path(tmp_path_factory):
    return str(write_parts_body(tmp_path_factory.mktemp("body") / "tiny.npz"))


def _hmrt(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hmrt", "synth", *args], capture_output=True, text=True
    )


def test_shard_round_trip_and_dataset(tmp_path, body_path):
    config = SynthConfig(body_path=body_path)
    out = generate_shards(
        tmp_path / "shards", 5, seed=3, config=config, shard_size=2, progress=False
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["n"] == 5 and [s["count"] for s in manifest["shards"]] == [2, 2, 1]
    reader = ShardReader(out)
    gen = SyntheticGenerator(config, seed=3)
    for i in (0, 3, 4):
        stored, fresh = reader[i], gen.sample(i)
        np.testing.assert_array_equal(stored["image"], fresh["image"])  # PNG is lossless
        np.testing.assert_array_equal(stored["occluder_mask"], fresh["occluder_mask"])
        for key in LABEL_KEYS:
            np.testing.assert_array_equal(stored[key], fresh[key], err_msg=key)
    # Items from shards equal items generated on the fly (same augmentation per index).
    body = BodyModel(body_path)
    from_shards = ShardDataset(out, body=body)
    on_the_fly = SyntheticDataset(config, seed=3, body=body)
    a, b = from_shards[4], on_the_fly[4]
    for key in a:
        np.testing.assert_allclose(a[key], b[key], atol=1e-4, err_msg=key)


def test_shards_refuse_another_body(tmp_path, body_path):
    from hmrt.runtime.errors import InputError

    out = generate_shards(
        tmp_path / "s", 1, config=SynthConfig(body_path=body_path), progress=False
    )
    other = write_parts_body(tmp_path / "other.npz")
    arrays = dict(np.load(other))
    arrays["v_template"] = arrays["v_template"] * 1.1
    np.savez(other, **arrays)
    with pytest.raises(InputError, match="body model"):
        ShardDataset(out, body=BodyModel(other))


def test_cli_writes_shards_in_parallel(tmp_path, body_path):
    out = tmp_path / "cli"
    proc = _hmrt("--out", str(out), "--n", "4", "--workers", "2", "--shard-size", "3",
                 "--seed", "5", "--size", "96x64", "--body", body_path, "--quiet")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    reader = ShardReader(out)
    assert len(reader) == 4 and reader[3]["image"].shape == (64, 96, 3)
    single = SyntheticGenerator(SynthConfig(width=96, height=64, body_path=body_path), seed=5)
    np.testing.assert_array_equal(reader[3]["image"], single.sample(3)["image"])
    # Refuses to overwrite without --force, and a folder that is not a shard set at all.
    again = _hmrt("--out", str(out), "--n", "1", "--body", body_path, "--quiet")
    assert again.returncode == 2 and "--force" in again.stderr
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("keep me")
    other = _hmrt("--out", str(tmp_path / "other"), "--n", "1", "--body", body_path)
    assert other.returncode == 2 and (tmp_path / "other" / "notes.txt").exists()


def test_cli_video_decodes_with_ground_truth(tmp_path, body_path):
    video = tmp_path / "clip.mp4"
    args = ("--video", str(video), "--frames", "9", "--size", "128x96", "--seed", "2",
            "--body", body_path, "--quiet")  # fmt: skip
    proc = _hmrt(*args)
    assert proc.returncode == 0, proc.stderr
    cap = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    assert len(frames) == 9 and frames[0].shape == (96, 128, 3)
    gt = np.load(tmp_path / "clip.gt.npz")
    assert gt["joints2d"].shape == (9, 24, 3) and gt["rotmats"].shape == (9, 24, 3, 3)
    assert gt["vertices"].dtype == np.float16 and gt["K"].shape == (9, 3, 3)
    assert tuple(gt["size"]) == (128, 96) and gt["fps"] == 30
    # Smooth: the 2D joints move a few pixels per frame, never jump.
    step = np.abs(np.diff(gt["joints2d"][:, :, :2], axis=0)).max()
    assert 0 < step < 12
    # Deterministic: the same settings give the same ground truth (in-process this time).
    from hmrt.train.data.video import write_clip

    _, gt2 = write_clip(
        tmp_path / "again.mp4", 9, 2, (128, 96), body_path=body_path, progress=False
    )
    np.testing.assert_array_equal(np.load(gt2)["joints3d"], gt["joints3d"])
    bad = _hmrt("--video", str(tmp_path / "clip.avi"), "--frames", "2", "--body", body_path)
    assert bad.returncode == 2 and "mp4" in bad.stderr


@pytest.mark.skipif(real_body_path() is None, reason="bundled body model not built yet")
def test_validation_set_is_cached(tmp_path):
    from hmrt.train.data import validation as V

    path = V.ensure_synth_val(tmp_path, size=2, progress=False)
    stamp = (path / "manifest.json").stat().st_mtime_ns
    assert V.ensure_synth_val(tmp_path, size=2, progress=False) == path
    assert (path / "manifest.json").stat().st_mtime_ns == stamp  # not regenerated
    ds = V.synth_val_dataset(tmp_path, size=2)
    item = ds[0]
    assert item["image"].shape == (3, 224, 224) and item["flip"] == 0 and item["rot"] == 0
    frames = list(V.synth_val_frames(tmp_path, size=2))
    assert len(frames) == 2 and frames[0]["frame"].shape == (224, 224, 3)
    np.testing.assert_allclose(frames[0]["box"], item["box"], rtol=1e-5)
    # A smaller request reuses the cached set: the same samples, nothing regenerated.
    small = V.synth_val_dataset(tmp_path, size=1)
    assert len(small) == 1 and not V.synth_val_dir(tmp_path, 1).exists()
    np.testing.assert_array_equal(small[0]["image"], item["image"])
