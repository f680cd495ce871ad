"""The results writer streams to disk: memory stays flat however many frames arrive, and the
npz it assembles at the end is the one the former in-memory writer produced (same keys, shapes,
dtypes and values), plus ``person_found`` / ``person_score`` when Results carry them."""

from __future__ import annotations

import gc
import json
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from hmrt.runtime.result import Result
from hmrt.runtime.stats import Samples, percentiles, stage_table
from hmrt.runtime.writers import AtomicOutputs, PictureFolderSink, ResultsWriter

V = 200  # vertices of the small test body


def _result(i: int, person: bool = True) -> Result:
    """A deterministic Result for frame ``i`` (no model needed: the writer is under test)."""
    rng = np.random.default_rng(i)
    res = Result(
        vertices=rng.standard_normal((V, 3)).astype(np.float32),
        joints3d=rng.standard_normal((24, 3)).astype(np.float32),
        joints2d=rng.standard_normal((24, 2)).astype(np.float32),
        rotmats=rng.standard_normal((24, 3, 3)).astype(np.float32),
        betas=rng.standard_normal(10).astype(np.float32),
        translation=rng.standard_normal(3).astype(np.float32),
        cam_crop=rng.standard_normal(3).astype(np.float32),
        bbox=rng.uniform(0, 100, 4).astype(np.float32),
        box=rng.uniform(0, 100, 3).astype(np.float32),
        intrinsics=np.eye(3),
        confidence=float(rng.uniform()),
        frame_index=i,
        timestamp=i / 30,
    )
    if hasattr(res, "person_found"):
        res.person_found = person
        res.person_score = 0.9 if person else 0.1
    return res


def _old_npz(results: list[Result], path: Path, extra: dict | None = None) -> None:
    """What the in-memory ResultsWriter wrote before streaming (kept here as the reference)."""
    rows: dict[str, list] = {}
    for r in results:
        row = {
            "frame": r.frame_index, "timestamp": r.timestamp, "confidence": r.confidence,
            "vertices": r.vertices, "joints3d": r.joints3d, "joints2d": r.joints2d,
            "translation": r.translation, "cam_crop": r.cam_crop, "bbox": r.bbox,
            "intrinsics": r.intrinsics, "rotmats": r.rotmats, "betas": r.betas,
            "person_found": getattr(r, "person_found", None),
            "person_score": getattr(r, "person_score", None),
        }  # fmt: skip
        for k, v in row.items():
            if v is not None:
                rows.setdefault(k, []).append(v)
    arrays = {k: np.asarray(v) for k, v in rows.items()}
    arrays.update({k: np.asarray(v) for k, v in (extra or {}).items()})
    with open(path, "wb") as fh:
        np.savez_compressed(fh, **arrays)


def _assert_same_npz(a: Path, b: Path) -> None:
    with np.load(a) as x, np.load(b) as y:
        assert list(x.keys()) == list(y.keys())
        for k in x.files:
            assert x[k].dtype == y[k].dtype and x[k].shape == y[k].shape, k
            np.testing.assert_array_equal(x[k], y[k], err_msg=k)


def test_streamed_npz_equals_in_memory_npz(tmp_path):
    results = [_result(i, person=i % 3 != 0) for i in range(40)]
    extra = {"gt_index": np.arange(5), "note": np.array("synthetic")}
    writer = ResultsWriter(tmp_path / "new.npz", tmp_path / "new.jsonl", extra)
    for r in results:
        writer.add(r)
    writer.close()
    _old_npz(results, tmp_path / "old.npz", extra)
    _assert_same_npz(tmp_path / "new.npz", tmp_path / "old.npz")
    with np.load(tmp_path / "new.npz") as npz:
        assert npz["vertices"].shape == (40, V, 3) and npz["frame"].dtype == np.int64
        if hasattr(results[0], "person_found"):
            assert npz["person_found"].dtype == np.bool_
            assert list(npz["person_found"][:4]) == [False, True, True, False]
    # Compressed like np.savez_compressed, and nothing left beside the outputs.
    with zipfile.ZipFile(tmp_path / "new.npz") as zf:
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_DEFLATED}
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "new.jsonl", "new.npz", "old.npz"
    ]  # fmt: skip
    rows = [json.loads(line) for line in (tmp_path / "new.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in rows] == list(range(40)) and "vertices" not in rows[0]


def test_writer_memory_does_not_grow_with_frames(tmp_path):
    """3,000 frames: what the writer holds after 3,000 equals what it held after 300, and
    assembling the npz needs a bounded buffer, not the whole run in memory."""
    writer = ResultsWriter(tmp_path / "r.npz", tmp_path / "r.jsonl")
    result = _result(0)
    gc.collect()
    tracemalloc.start()
    try:
        for i in range(3000):
            result.frame_index, result.timestamp = i, i / 30
            # New arrays every frame, as a Reconstructor returns: keeping them would grow.
            result.vertices, result.joints3d = result.vertices.copy(), result.joints3d.copy()
            writer.add(result)
            if i == 299:
                gc.collect()
                early = tracemalloc.get_traced_memory()[0]
        gc.collect()
        late = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        writer.close()
        closing_peak = tracemalloc.get_traced_memory()[1] - late
    finally:
        tracemalloc.stop()
    # The in-memory writer kept every frame's vertices and joints: ~8 MB more here.
    assert (V * 3 + 24 * 3) * 4 * 2700 > 7_000_000
    assert late - early < 64_000, late - early
    assert closing_peak < 4 * (1 << 20), closing_peak  # ~1 MiB copy chunks, not ~10 MB
    with np.load(tmp_path / "r.npz") as npz:
        assert npz["vertices"].shape == (3000, V, 3)
        assert list(npz["frame"][[0, 2999]]) == [0, 2999]


def test_dtype_widens_like_np_asarray(tmp_path):
    """A key whose values widen mid-run (int then float) is stored as np.asarray would."""
    writer = ResultsWriter(tmp_path / "w.npz", tmp_path / "w.jsonl")
    results = [_result(i) for i in range(5)]
    results[0].confidence = 1  # an int first
    for r in results:
        writer.add(r)
    writer.close()
    _old_npz(results, tmp_path / "old.npz")
    _assert_same_npz(tmp_path / "w.npz", tmp_path / "old.npz")


def test_discard_and_abort_leave_nothing(tmp_path):
    out = tmp_path / "save" / "deep"
    outputs = AtomicOutputs()
    writer = ResultsWriter(outputs.path(out / "r.npz"), outputs.path(out / "r.jsonl"))
    writer.add(_result(0))
    pictures = outputs.dir(out / "annotated")
    (pictures / "a.png").write_bytes(b"x")
    writer.discard()
    outputs.abort()
    assert list(tmp_path.iterdir()) == []  # also the folders it created


def test_picture_names_follow_inputs():
    sink = PictureFolderSink(Path("unused"), Path("unused"))
    names = [sink.name_for(n, i) for i, n in enumerate(["a.JPG", "a.png", "b.pgm", "b.png", ""])]
    assert names == ["a.jpg", "a.png", "b.png", "b_1.png", "frame_000004.png"]


def test_samples_are_bounded_with_exact_mean():
    s = Samples(capacity=1000)
    values = np.arange(100_000, dtype=np.float64)
    for v in values:
        s.append(v)
    assert s.count == 100_000 and len(s) == 1000 and len(np.asarray(s)) == 1000
    p = percentiles(s)
    assert p["mean"] == pytest.approx(values.mean())  # exact, not the sample's
    assert abs(p["p50"] - 50_000) < 5_000 and abs(p["p90"] - 90_000) < 5_000
    small = Samples()
    for v in (3.0, 1.0, 2.0):
        small.append(v)
    assert list(small) == [3.0, 1.0, 2.0] and percentiles(small)["p50"] == 2.0
    assert "decode" not in stage_table({"decode": Samples(), "inference": small})


def test_pose_joints_are_stored_with_their_labels(tmp_path):
    """A model with a pose network (HEMlets) adds ``pose_joints`` (F, P, 3) and its labels once;
    a model without one (DaNet, DecoMR) writes neither, as before."""
    names = tuple(f"joint{j}" for j in range(18))
    results = [_result(i) for i in range(4)]
    for i, r in enumerate(results):
        r.pose_joints = np.full((18, 3), float(i), np.float32)
        r.pose_joint_set, r.pose_joint_names = "hemlets18", names
    writer = ResultsWriter(tmp_path / "p.npz", tmp_path / "p.jsonl", {"note": np.array("x")})
    for r in results:
        writer.add(r)
    writer.close()
    with np.load(tmp_path / "p.npz") as npz:  # no pickle needed for the labels
        assert npz["pose_joints"].shape == (4, 18, 3) and npz["pose_joints"].dtype == np.float32
        assert list(npz["pose_joints"][:, 0, 0]) == [0.0, 1.0, 2.0, 3.0]
        assert tuple(npz["pose_joint_names"]) == names and str(npz["pose_joint_set"]) == "hemlets18"
        assert str(npz["note"]) == "x"
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert rows[2]["pose_joint_set"] == "hemlets18" and np.shape(rows[2]["pose_joints"]) == (18, 3)
    writer = ResultsWriter(tmp_path / "d.npz", tmp_path / "d.jsonl")
    writer.add(_result(0))
    writer.close()
    with np.load(tmp_path / "d.npz") as npz:
        assert not {"pose_joints", "pose_joint_names", "pose_joint_set"} & set(npz.files)
    row = json.loads((tmp_path / "d.jsonl").read_text())
    assert "pose_joints" not in row and "pose_joint_set" not in row
