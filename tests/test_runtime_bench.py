"""``hmrt bench``: the per-stage table, percentiles, machine description and JSON summary."""

from __future__ import annotations

import json

from onnx_fixtures import make_blob_model, write_blob_video

from hmrt.cli import main
from hmrt.runtime.stats import percentiles, stage_table


def test_bench_prints_stages_and_writes_json(tmp_path, capsys):
    model = make_blob_model(tmp_path / "blob.onnx")
    out = tmp_path / "bench.json"
    code = main(["bench", "--model", str(model), "--frames", "6", "--warmup", "2",
                 "--render", "--json", str(out), "--threads", "1"])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0
    for word in ("decode", "preprocess", "inference", "postprocess", "smoothing", "render",
                 "p50 ms", "p99 ms", "end-to-end", "cpu", "onnxruntime"):  # fmt: skip
        assert word in printed, word
    summary = json.loads(out.read_text())
    assert summary["frames"] == 6 and summary["batch"] == 1 and summary["fps"] > 0
    assert set(summary["stages"]) >= {"decode", "inference", "render"}
    assert 0 < summary["pre_post_share"] < 1 and summary["machine"]["cores"]


def test_bench_batches_and_source(tmp_path, capsys):
    model = make_blob_model(tmp_path / "blob.onnx")
    video = write_blob_video(tmp_path / "v.avi", frames=5)  # shorter than the run: loops
    code = main(["bench", "--model", str(model), "--source", str(video), "--batch", "3",
                 "--frames", "4", "--warmup", "1", "--smooth", "none"])  # fmt: skip
    assert code == 0
    assert "batch 3 | 12 frames measured" in capsys.readouterr().out


def test_percentiles_and_table():
    p = percentiles(list(range(1, 101)))
    assert p["p50"] == 50.5 and 90 < p["p90"] < 91 and 99 < p["p99"] < 100
    table = stage_table({"inference": [1.0, 2.0], "render": []})
    assert "inference" in table and "render" not in table
