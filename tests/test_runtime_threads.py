"""Thread safety: two Reconstructors on the same model file in two threads give exactly the
results of running them one after the other; one shared instance serialises safely."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from onnx_fixtures import blob_frame, make_blob_model

from hmrt.runtime import Reconstructor


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    # work=4 adds convolutions so both threads really overlap inside ONNX Runtime.
    return make_blob_model(tmp_path_factory.mktemp("m") / "blob.onnx", work=4)


def _sequence(offset: int) -> list[np.ndarray]:
    return [blob_frame(480, 360, (120 + 8 * i + offset, 180), (40, 120)) for i in range(25)]


def _run(rec: Reconstructor, frames: list[np.ndarray]) -> list[np.ndarray]:
    return [np.concatenate([r.joints3d.ravel(), r.joints2d.ravel(), r.rotmats.ravel()])
            for r in (rec(f) for f in frames)]  # fmt: skip


def test_two_threads_match_sequential(model):
    seqs = [_sequence(0), _sequence(60)]
    expected = [
        _run(
            Reconstructor(model, backend="onnxruntime-cpu", smoothing="default", detector="none"), s
        )
        for s in seqs
    ]
    recs = [
        Reconstructor(model, backend="onnxruntime-cpu", smoothing="default", detector="none")
        for _ in seqs
    ]
    got: list = [None, None]
    errors: list = []
    barrier = threading.Barrier(2)

    def work(i: int) -> None:
        try:
            barrier.wait()
            got[i] = _run(recs[i], seqs[i])
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i in range(2):
        for a, b in zip(got[i], expected[i]):
            np.testing.assert_array_equal(a, b)


def test_shared_instance_is_serialised_not_corrupted(model):
    """Calls on one instance from two threads are safe (locked); each gets a valid result."""
    rec = Reconstructor(model, backend="onnxruntime-cpu", detector="none")
    frame = blob_frame(480, 360, (240, 180), (40, 120))
    ref = rec.reconstruct_batch(frame, [(200, 100, 280, 260)])[0]
    results: list = []

    def work() -> None:
        for _ in range(10):
            results.append(rec.reconstruct_batch(frame, [(200, 100, 280, 260)])[0])
            rec(frame)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 20
    for r in results:
        np.testing.assert_array_equal(r.joints2d, ref.joints2d)
