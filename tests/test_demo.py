"""``hmrt demo``: the full flow on a contract ONNX and a video with ground truth, accuracy
against that ground truth, and clear errors when the bundled defaults are unavailable."""

from __future__ import annotations

import json
import os
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
    # Ground-truth boxes: hmrt's person detector rightly finds no person in a blob video.
    with np.load(clip["video"].with_suffix(".npz")) as data:
        gt = dict(data)
    gt_file = tmp_path / "gt_boxes.npz"
    np.savez(gt_file, **gt, bbox=np.tile([100.0, 40.0, 220.0, 200.0], (len(gt["joints3d"]), 1)))
    code = main(["demo", "--model", str(clip["model"]), "--clip", str(clip["video"]),
                 "--ground-truth", str(gt_file), "--out", str(out), "--smooth", "none",
                 "--backend", "onnxruntime-cpu"])  # fmt: skip
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


def test_demo_model_by_name_picks_the_bundled_weights(tmp_path, capsys, no_bundled_weights):
    from hmrt.commands.demo import bundled_model

    assert bundled_model("decomr") == ("decomr", "edge") == bundled_model("decomr_edge")
    assert bundled_model("danet") == ("danet", "edge")
    assert bundled_model("decomr.onnx") is None and bundled_model("model.engine") is None
    code = main(["demo", "--model", "decomr", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "decomr-edge" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("name", ["bobw", "hkmr", "hemlets"])
def test_demo_by_name_without_weights_names_the_missing_file(
    name, tmp_path, capsys, no_bundled_weights
):
    """``hmrt demo --model bobw`` (or ``hkmr``, ``hemlets``) is a bundled model name; with no
    trained weights in the install it is one line naming ``weights/NAME_edge.pt``, exit code 2."""
    from hmrt.commands.demo import bundled_model

    assert bundled_model(name) == (name, "edge") == bundled_model(f"{name}_edge")
    code = main(["demo", "--model", name, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0, err
    assert f"{name}-edge" in err and f"{name}_edge.pt" in err
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
    """The README command in the full install: packaged ONNX and clip (or, in a checkout
    without them, the cached export and generated clip), accuracy with detection counts."""
    if not asset_path("weights/danet_edge.pt").is_file():
        pytest.skip("bundled DaNet-edge weights not present yet")
    monkeypatch.setenv("HMRT_CACHE", str(tmp_path / "cache"))
    code = main(["demo", "--out", str(tmp_path / "o"), "--max-frames", "30"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "PA-MPJPE" in printed.out and "person found on 30/30 frames" in printed.out


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
    assert code == 0 and "person boxes: hmrt's embedded person detector" in capsys.readouterr().out
    assert json.loads((tmp_path / "o_full" / "metrics.json").read_text())["gt_boxes"] == "off"
    code = main(["demo", "--model", str(clip["model"]), "--clip", str(clip["video"]), "--out",
                 str(tmp_path / "o_err"), "--gt-boxes", "acquisition"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and "no per-frame bbox" in err and not (tmp_path / "o_err").exists()


# -- accuracy: detections, and lost frames counted as lost ---------------------------------
def _results(path, frames, pred_j, found=None):
    """A hand-made results.npz: what the writers store, reduced to what accuracy() reads."""
    arrays = {"frame": np.asarray(frames), "joints3d": pred_j,
              "vertices": np.zeros((len(frames), 5, 3), np.float32)}  # fmt: skip
    if found is not None:
        arrays["person_found"] = np.asarray(found)
        arrays["person_score"] = np.where(found, 0.9, 0.1)
    np.savez(path, **arrays)
    return path


def test_accuracy_scores_found_frames_and_counts_lost_ones_as_misses(tmp_path):
    from hmrt.commands.demo import accuracy, accuracy_lines

    rng = np.random.default_rng(0)
    gt_j = rng.normal(0, 0.3, (8, 24, 3))
    pred = gt_j[:6].copy()
    pred[1] *= 1.05  # found, small error (PA-MPJPE 0: a pure scale)
    pred[4] = rng.normal(0, 0.5, (24, 3))  # found, but a wrong body: a miss
    pred[[2, 5]] = 0.0  # lost: what the model returned is not a person and must not count
    found = [True, True, False, True, True, False]
    gt = {"joints3d": gt_j, "vertices": None}
    m = accuracy(_results(tmp_path / "r.npz", range(6), pred, found), gt)
    assert (m["frames"], m["frames_found"], m["frames_lost"]) == (6, 4, 2)
    ok = [0, 1, 3, 4]
    want = np.mean([mpjpe_mm(pred[i], gt_j[i]) for i in ok])
    assert m["mpjpe"] == pytest.approx(want) and "pve" not in m
    assert m["frames_within_150mm"] == 3 and m["within_150mm_rate"] == pytest.approx(0.5)
    lines = accuracy_lines(m)
    assert lines[0] == "person found on 4/6 frames (2 lost)"
    assert lines[1].startswith("accuracy on the 4 frames with a person: MPJPE")
    assert lines[2] == "frames within 150 mm PA-MPJPE: 3/6 (a lost frame counts as a miss)"

    # Frames the run processed but never wrote are lost too.
    m = accuracy(_results(tmp_path / "r.npz", range(6), pred, found), gt, processed=8)
    assert (m["frames"], m["frames_lost"], m["frames_within_150mm"]) == (8, 4, 3)


def test_accuracy_without_person_fields_or_without_any_person(tmp_path):
    from hmrt.commands.demo import accuracy, accuracy_lines

    gt_j = np.random.default_rng(1).normal(0, 0.3, (4, 24, 3))
    gt = {"joints3d": gt_j, "vertices": np.zeros((4, 5, 3))}
    m = accuracy(_results(tmp_path / "old.npz", range(4), gt_j), gt)  # results before the field
    assert (m["frames_found"], m["frames_lost"], m["frames_within_150mm"]) == (4, 0, 4)
    assert m["mpjpe"] == pytest.approx(0.0, abs=1e-9) and "pve" in m
    m = accuracy(_results(tmp_path / "none.npz", range(4), gt_j, [False] * 4), gt)
    assert m["frames_found"] == 0 and m["mpjpe"] is None and m["pve"] is None
    assert m["within_150mm_rate"] == 0.0
    json.dumps(m, allow_nan=False)  # metrics.json stays strict JSON
    assert "no frame had a person" in accuracy_lines(m)[1]


def mpjpe_mm(pred, gt):
    """Root-relative mean joint error of one frame, in mm (an independent reference)."""
    return np.linalg.norm((pred - pred[0]) - (gt - gt[0]), axis=1).mean() * 1000


# -- the packaged defaults: ONNX and clip, no torch needed ----------------------------------
PACKAGED = (
    asset_path("weights/danet_edge.onnx").is_file() and asset_path("demo/demo_clip.mp4").is_file()
)
needs_packaged = pytest.mark.skipif(not PACKAGED, reason="packaged demo ONNX / clip not present")


@needs_packaged
def test_default_model_is_the_packaged_onnx_unless_stale(tmp_path, monkeypatch, capsys):
    from hmrt.commands import demo

    monkeypatch.setenv("HMRT_CACHE", str(tmp_path / "cache"))
    assert demo.default_model() == demo.bundled_onnx_path()
    # A checkout whose .pt changed after the export: the packaged file is not used.
    monkeypatch.setattr(demo, "onnx_weights_sha", lambda path: "0" * 64)
    cached = tmp_path / "cache" / "models"
    cached.mkdir(parents=True)
    from hmrt.runtime.cache import file_sha256

    sha = file_sha256(asset_path("weights/danet_edge.pt"))
    (cached / f"danet_edge_matmul-{sha[:12]}.onnx").write_bytes(b"stand-in")
    assert demo.default_model() == cached / f"danet_edge_matmul-{sha[:12]}.onnx"
    assert "is not the export of danet_edge.pt" in capsys.readouterr().out
    # A truncated packaged file reads as "no hash": not used either.
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(asset_path("weights/danet_edge.onnx").read_bytes()[:1000])
    monkeypatch.undo()
    from hmrt.commands.demo import onnx_weights_sha

    assert onnx_weights_sha(broken) == ""


@needs_packaged
def test_packaged_clip_ground_truth_rebuilds_vertices_that_fit_its_boxes():
    from hmrt.commands.demo import default_clip, find_ground_truth, load_ground_truth

    clip = default_clip()
    assert clip == asset_path("demo/demo_clip.mp4")
    gt = load_ground_truth(find_ground_truth(clip))
    verts, K, boxes = gt["vertices"], gt["K"], gt["bbox"]
    assert verts.shape == (120, 13348, 3) and boxes.shape == (120, 4)
    # The rebuilt mesh projects into the clip's person box on every frame.
    uv = verts @ K.T
    uv = uv[..., :2] / uv[..., 2:]
    lo, hi = uv.min(axis=1), uv.max(axis=1)
    side = boxes[:, 2:] - boxes[:, :2]
    assert np.all(np.abs(lo - boxes[:, :2]) < 0.1 * side)
    assert np.all(np.abs(hi - boxes[:, 2:]) < 0.1 * side)
    size = sum(asset_path(f"demo/demo_clip{s}").stat().st_size for s in (".mp4", ".gt.npz"))
    assert size < 3 * 2**20


# Make ``import torch`` fail as on the lean install (``pip install "hmrt[ort]"``), then run the
# demo on its packaged defaults in a fresh interpreter.
NO_TORCH = """
import importlib.abc, sys
class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch":
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
sys.meta_path.insert(0, NoTorch())
from hmrt.cli import main
code = main(sys.argv[1:])
loaded = [m for m in sys.modules if m.split(".")[0] == "torch"
          or m.startswith(("hmrt.train", "hmrt.export", "hmrt.calib"))]
print("heavy modules:", loaded)
sys.exit(code or (3 if loaded else 0))
"""


@needs_packaged
def test_demo_runs_without_torch_on_the_packaged_defaults(tmp_path):
    """The README's lean line: nothing is exported or generated, torch is never imported.
    (``tests/test_lean_install.py`` proves the same on a real torch-free pip install, slow.)"""
    env = dict(os.environ, HMRT_CACHE=str(tmp_path / "cache"))  # no cached export to lean on
    cmd = [sys.executable, "-c", NO_TORCH, "demo", "--out", str(tmp_path / "o"),
           "--max-frames", "6", "--backend", "onnxruntime-cpu"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "person found on 6/6 frames" in proc.stdout and "PA-MPJPE" in proc.stdout
    assert "exporting" not in proc.stdout and "generating" not in proc.stdout
    assert not (tmp_path / "cache").exists()
