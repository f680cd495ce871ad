"""``hmrt demo``: the full flow on a contract ONNX and a video with ground truth, accuracy
against that ground truth, and clear errors when the bundled defaults are unavailable."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from onnx_fixtures import constant_body, make_blob_model, write_blob_video

from hmrt.assets import asset_path
from hmrt.cli import main
from hmrt.runtime.metrics import pa_mpjpe


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    d = tmp_path_factory.mktemp("demo")
    video = write_blob_video(d / "clip.avi", frames=12, width=320, height=240)
    body = constant_body(200)
    # Ground truth: the model's constant body, scaled by 1.1 and moved (root-relative metrics
    # ignore the move; PA-MPJPE also ignores the scale).
    gt_j = np.repeat(body["joints3d"][None] * 1.1 + [0.2, 0.1, 4.0], 12, axis=0)
    gt_v = np.repeat(body["vertices"][None] * 1.1 + [0.2, 0.1, 4.0], 12, axis=0)
    np.savez(d / "clip.npz", joints3d=gt_j, vertices=gt_v)
    return {"model": make_blob_model(d / "blob.onnx"), "video": video, "body": body}


def test_demo_flow_writes_outputs_and_accuracy(clip, tmp_path, capsys):
    out = tmp_path / "demo_out"
    code = main(["demo", "--model", str(clip["model"]), "--clip", str(clip["video"]),
                 "--out", str(out), "--smooth", "none", "--backend", "onnxruntime-cpu"])  # fmt: skip
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert {p.name for p in out.iterdir()} == {
        "annotated.mp4", "results.npz", "results.jsonl", "metrics.json"
    }  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    j = clip["body"]["joints3d"]
    expected_mpjpe = np.linalg.norm(0.1 * (j - j[0]), axis=1).mean() * 1000
    assert metrics["frames"] == 12
    assert metrics["mpjpe"] == pytest.approx(expected_mpjpe, rel=1e-3)
    assert metrics["pa_mpjpe"] == pytest.approx(pa_mpjpe(j, 1.1 * j), abs=1e-3)
    assert metrics["pa_mpjpe"] < 1e-3 and metrics["pve"] > 0
    assert "MPJPE" in printed.out and "PA-MPJPE" in printed.out and "FPS" in printed.out


def test_demo_without_ground_truth_still_runs(clip, tmp_path, capsys):
    video = write_blob_video(tmp_path / "other.avi", frames=4)
    code = main(["demo", "--model", str(clip["model"]), "--clip", str(video),
                 "--out", str(tmp_path / "o")])  # fmt: skip
    assert code == 0
    assert "accuracy not computed" in capsys.readouterr().out


@pytest.fixture
def no_bundled_weights(monkeypatch, tmp_path):
    """An install without the bundled weights: asset lookups for weights/ point at nothing."""
    import hmrt.assets

    real = hmrt.assets.asset_path

    def fake(relative: str):
        if relative.startswith("weights/"):
            return tmp_path / "no_such_install" / relative
        return real(relative)

    monkeypatch.setattr(hmrt.assets, "asset_path", fake)


def test_demo_default_model_missing_is_a_clear_error(clip, tmp_path, capsys, no_bundled_weights):
    code = main(["demo", "--clip", str(clip["video"]), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "--model" in err
    assert not (tmp_path / "o").exists()


def test_demo_command_imports_no_torch_until_it_must_export():
    """``hmrt demo`` lives in hmrt.commands (it spans runtime, export and the data engine), but
    importing it and building its parser loads neither torch nor hmrt.export / hmrt.train."""
    code = (
        "import sys\n"
        "import hmrt.commands.demo, hmrt.commands.bench\n"
        "from hmrt.cli import _build_parser\n"
        "_build_parser(['demo'])\n"
        "_build_parser(['bench'])\n"
        "bad = [m for m in sys.modules if m == 'torch' or m.startswith(('torch.', 'hmrt.export',"
        " 'hmrt.train', 'hmrt.calib'))]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_bench_without_model_uses_the_demo_default(capsys, no_bundled_weights):
    code = main(["bench", "--frames", "2", "--warmup", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "--model" in err


@pytest.mark.slow
def test_demo_defaults_end_to_end(tmp_path, monkeypatch, capsys):
    """The README command: bundled weights -> cached ONNX, generated clip, accuracy."""
    if not asset_path("weights/danet_edge.pt").is_file():
        pytest.skip("bundled DaNet-edge weights not present yet")
    monkeypatch.setenv("HMRT_CACHE", str(tmp_path / "cache"))
    code = main(["demo", "--out", str(tmp_path / "o"), "--max-frames", "30"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "PA-MPJPE" in printed.out


def test_demo_crops_ground_truth_boxes_when_the_clip_has_them(clip, tmp_path, capsys):
    d = tmp_path / "withbox"
    d.mkdir()
    video = write_blob_video(d / "clip.avi", frames=6, width=320, height=240)
    body = clip["body"]
    gt_j = np.repeat(body["joints3d"][None] + [0.0, 0.0, 4.0], 6, axis=0)
    boxes = np.array([[100.0, 60.0, 180.0, 200.0]] * 6)  # off-centre: not the whole frame
    np.savez(d / "clip.npz", joints3d=gt_j, bbox=boxes)
    out = tmp_path / "o_gt"
    code = main(["demo", "--model", str(clip["model"]), "--clip", str(video), "--out", str(out),
                 "--smooth", "none"])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0 and "person boxes: the clip's ground-truth box on every frame" in printed
    assert json.loads((out / "metrics.json").read_text())["gt_boxes"] == "every-frame"
    with np.load(out / "results.npz") as res:
        first = res["bbox"][0]
    # The first crop is centred on the ground-truth box (a whole-frame crop would be at 160,120).
    np.testing.assert_allclose((first[:2] + first[2:]) / 2, [140.0, 130.0], atol=1.0)

    code = main(["demo", "--model", str(clip["model"]), "--clip", str(video), "--out",
                 str(tmp_path / "o_full"), "--gt-boxes", "off"])  # fmt: skip
    assert code == 0 and "person boxes: whole first frame" in capsys.readouterr().out
    assert json.loads((tmp_path / "o_full" / "metrics.json").read_text())["gt_boxes"] == "off"
    code = main(["demo", "--model", str(clip["model"]), "--clip", str(clip["video"]), "--out",
                 str(tmp_path / "o_err"), "--gt-boxes", "acquisition"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and "no per-frame bbox" in err and not (tmp_path / "o_err").exists()
