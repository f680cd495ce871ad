"""``hmrt import-checkpoint --model hemlets``: the official pose network -> hmrt checkpoint, PoSh
marked untrained, and refusals.

The released weights (``hemlets_h36m_lastest.pth``, research-only) are not available to tests, so
the official file is built from the committed manifest (names and shapes of the official
``Network``, read from the official code by ``tools/hemlets_official_manifest.py``) with random
values, saved as the release was: a bare state dict in torch's legacy (pre-1.6) format. The
last 1x1 conv is scaled up so the volumes are peaked and the joints spread over the crop (fan-in
scaled values give near-uniform volumes: every joint at the centre, a weak comparison).
Default selection: the manifest against the paper model, an import whose pose joints equal a
model loaded directly with the same values, reproducibility, containers, every refusal (one
line, exit 2, nothing written). Opt-in (``HMRT_HEMLETS_OFFICIAL=<clone of
github.com/redrock303/HEMlets>``): the official ``Network`` itself gives the same joints and the
same manifest. Slow: import -> ``hmrt export`` -> ONNX Runtime equal to torch, and ``hmrt eval``.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import import_helpers
import pytest
import torch

from hmrt.assets import asset_path
from hmrt.cli import main
from hmrt.export.import_checkpoint import (
    LAYOUTS,
    import_official,
    load_manifest,
    read_official_file,
)
from hmrt.train.models.hemlets.official_keys import (
    convert_official_state_dict,
    official_to_hmrt_key,
)

pytestmark = pytest.mark.skipif(
    not asset_path("body/hmrt_body.npz").is_file(), reason="bundled body model not built yet"
)
REPO = Path(__file__).resolve().parents[1]
OFFICIAL_CLONE = os.environ.get("HMRT_HEMLETS_OFFICIAL", "")
POSE_PARAMETERS = 49_614_844  # the official Network, counted with torchvision (research §1.11)
PEAK_SCALE = 30.0  # conv_tail.3 weights x this: peaked volumes, joints spread (std ~0.1)


def dis_map(shape: tuple[int, ...]) -> torch.Tensor:
    """The official soft-argmax grid ``i/(D-1)`` repeated per joint, shape ``(1, J, D)``."""
    return (torch.arange(shape[-1], dtype=torch.float64) / (shape[-1] - 1)).float().expand(shape)


def _hemlets_values(key: str, leaf: str, shape: tuple[int, ...], g: torch.Generator):
    """The grid the official constructor computes, and a sharp last layer (peaked volumes)."""
    if key == "volume_reg.dis_map":
        return dis_map(shape).clone()
    if key == "conv_tail.3.weight":
        return torch.randn(shape, generator=g) / math.sqrt(math.prod(shape[1:])) * PEAK_SCALE
    return None


def official_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random values in the official layout, scaled like trained weights."""
    return import_helpers.official_state("hemlets", seed, _hemlets_values)


def cheap_state() -> dict[str, torch.Tensor]:
    """The official layout with one stored number per tensor, and the true grid (tiny file)."""
    state = import_helpers.cheap_state("hemlets")
    state["volume_reg.dis_map"] = dis_map(tuple(state["volume_reg.dis_map"].shape))
    return state


def save_released(state: dict, path: Path) -> Path:
    """As the release was written (torch 1.1): a bare state dict, legacy serialisation."""
    torch.save(state, path, _use_new_zipfile_serialization=False)
    return path


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    return import_helpers.run_import(capsys, "hemlets", *args)


def pose_joints(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The pose network's 18 soft-argmax joints ``(N, 18, 3)`` in eval mode (a training-only
    output of the model; read at ``volume_reg``)."""
    seen: list[torch.Tensor] = []
    hook = model.volume_reg.register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        with torch.no_grad():
            model.eval()(images)
    finally:
        hook.remove()
    return seen[0]


@pytest.fixture(scope="module")
def official_file(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A full random official checkpoint in the released file layout."""
    state = official_state()
    return save_released(state, tmp_path_factory.mktemp("official") / "h36m.pth"), state


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(2, 3, 256, 256, generator=torch.Generator().manual_seed(3))


def test_manifest_cites_the_official_code_and_maps_onto_the_paper_model():
    from hmrt.train.models import build

    manifest = load_manifest("hemlets")
    source = manifest["source"]
    assert source["repository"] == "https://github.com/redrock303/HEMlets"
    assert len(source["commit"]) == 40 and "DIMS 64" in source["config"]
    rows = import_helpers.manifest_rows("hemlets")
    assert manifest["num_entries"] == len(rows) == 375
    assert "module." not in "".join(k for k, _, _ in rows)
    stats = ("running_mean", "running_var", "num_batches_tracked", "dis_map")
    assert sum(math.prod(s) for k, s, _ in rows if not k.endswith(stats)) == POSE_PARAMETERS
    with torch.device("meta"):  # names and shapes only
        paper = build("hemlets", "paper").state_dict()
    mapped = {official_to_hmrt_key(k): s for k, s, _ in rows}
    assert None not in mapped  # nothing dropped, and every key is its own (no renames)
    assert all(official_to_hmrt_key(k) == k for k, _, _ in rows)
    hmrt_only = sorted(set(paper) - set(mapped))
    assert hmrt_only and all(k.startswith("posh.") for k in hmrt_only)  # PoSh: never released
    assert set(mapped) <= set(paper)
    assert all(tuple(paper[k].shape) == s for k, s in mapped.items())


def test_import_gives_the_pose_joints_of_a_direct_load(official_file, images, tmp_path, capsys):
    from hmrt.export.import_checkpoint import _sha256
    from hmrt.train.checkpoint import load_checkpoint, read_checkpoint
    from hmrt.train.models import build

    path, state = official_file
    out = tmp_path / "hmrt_hemlets.pt"
    code, stdout, stderr = run_cli(capsys, "--official", str(path), "--out", str(out))
    assert code == 0, stderr
    assert f"wrote {out}" in stdout and "untrained: PoSh" in stdout
    assert "hmrt export --checkpoint" in stdout
    assert "mapped 375 tensors" in stderr and "0 official-only dropped" in stderr
    assert "warning: PoSh (the SMPL regressor) is untrained" in stderr
    assert "open body model" not in stderr  # the pose network uses no body model
    ckpt = read_checkpoint(out)
    assert ckpt["model"]["name"] == "hemlets" and ckpt["model"]["variant"] == "paper"
    assert ckpt["imported_from"]["sha256"] == _sha256(path)
    (untrained,) = ckpt["imported_from"]["untrained"]
    assert untrained["prefix"] == "posh." and untrained["tensors"] > 0

    model = load_checkpoint(out)  # load_state_dict is strict
    got = model.state_dict()
    assert all(torch.equal(got[k], v) for k, v in state.items())  # volume_reg.dis_map included
    reference = build("hemlets", "paper")
    result = reference.load_state_dict(convert_official_state_dict(state), strict=False)
    assert not result.unexpected_keys
    assert result.missing_keys and all(k.startswith("posh.") for k in result.missing_keys)
    want = pose_joints(reference, images)
    joints = pose_joints(model, images)
    assert want.std() > 0.05  # peaked volumes: joints spread over the crop, not all at 0
    assert torch.equal(joints, want)


def test_import_is_reproducible_and_reads_containers(tmp_path):
    """Same file, same untrained PoSh (seeded); a re-saved ``{"state_dict": sd}`` or
    ``{"model": sd}`` is the same state dict."""
    path = save_released(cheap_state(), tmp_path / "cheap.pth")
    first = import_official("hemlets", path)["state_dict"]
    second = import_official("hemlets", path)["state_dict"]
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first if k.startswith("posh."))
    for key in ("state_dict", "model"):
        wrapped = tmp_path / f"{key}.pth"
        torch.save({key: cheap_state(), "epoch": 3}, wrapped)
        state = read_official_file(wrapped, LAYOUTS["hemlets"])
        assert len(state) == 375 and "volume_reg.dis_map" in state


def _refusal_file(kind: str, folder: Path) -> tuple[Path, list[str]]:
    """A released-layout file with one defect and the words its error line must contain."""
    state = cheap_state()
    if kind == "missing":
        del state["conv_FBI.conv_body.4.running_var"]
        words = ["1 missing", "conv_FBI.conv_body.4.running_var"]
    elif kind == "unexpected":
        state["conv_FBI.extra.weight"] = torch.zeros(1).expand(4, 4)
        words = ["1 unexpected", "conv_FBI.extra.weight"]
    elif kind == "posh":  # no release has PoSh: a file that does is not the official one
        state["posh.head.weight"] = torch.zeros(1).expand(229, 1024)
        words = ["1 unexpected", "posh.head.weight"]
    elif kind == "shape":  # a 17-joint or 32-bin model, say
        state["conv_tail.3.weight"] = torch.zeros(1).expand(1088, 1024, 1, 1)
        words = ["1 wrongly shaped", "conv_tail.3.weight (1088, 1024, 1, 1), expected (1152,"]
    elif kind == "grid":  # bin centres (i + 0.5)/64 instead of the official i/63
        state["volume_reg.dis_map"] = ((torch.arange(64) + 0.5) / 64).expand(1, 18, 64)
        words = ["buffers differ from the values the official code computes", "dis_map"]
    elif kind == "parallel":  # saved from a DataParallel wrapper: every name prefixed
        state = {f"module.{k}": v for k, v in state.items()}
        words = ["375 missing (backbone.conv1.weight", "375 unexpected (module.backbone"]
    else:  # not a checkpoint at all
        path = folder / "notes.pth"
        path.write_text("hemlets_h36m_lastest.pth: see the readme\n")
        return path, ["not a PyTorch checkpoint", "hemlets .pt file"]
    return save_released(state, folder / f"{kind}.pth"), words


@pytest.mark.parametrize(
    "kind", ["missing", "unexpected", "posh", "shape", "grid", "parallel", "text"]
)
def test_refusals_are_one_line_and_write_nothing(kind, tmp_path, capsys):
    path, words = _refusal_file(kind, tmp_path)
    out = tmp_path / "out" / "hmrt_hemlets.pt"
    code, stdout, stderr = run_cli(capsys, "--official", str(path), "--out", str(out))
    lines = [line for line in stderr.splitlines() if line.startswith("hmrt: ")]
    assert code == 2 and len(lines) == 1, stderr
    assert lines[0].startswith(f"hmrt: error: {path}:"), lines[0]
    assert all(w in lines[0] for w in words), lines[0]
    assert "Traceback" not in stderr and not out.exists() and not stdout


def test_missing_file_names_where_to_get_it(tmp_path, capsys):
    code, _, stderr = run_cli(capsys, "--official", str(tmp_path / "hemlets_h36m_lastest.pth"))
    assert code == 2 and "file not found" in stderr and "redrock303/HEMlets" in stderr


# ---------------------------------------------------------------------------------------------
# Against the official code (opt-in: a clone of github.com/redrock303/HEMlets; research-only
# code, never copied into hmrt)


@contextmanager
def official_code() -> Iterator:
    """``tools/hemlets_official_manifest.py`` as a module; sys.modules and sys.path restored
    afterwards (it stands in torchvision/easydict and imports the official ``network``)."""
    before, path = set(sys.modules), list(sys.path)
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import hemlets_official_manifest

        yield hemlets_official_manifest
    finally:
        sys.path[:] = path
        for name in set(sys.modules) - before:
            if name.split(".")[0] in OFFICIAL_MODULES:
                del sys.modules[name]


OFFICIAL_MODULES = (
    "hemlets_official_manifest",
    "network",
    "resnet",
    "config",
    "torchvision",
    "easydict",
)
needs_official = pytest.mark.skipif(
    not OFFICIAL_CLONE, reason="set HMRT_HEMLETS_OFFICIAL to a clone of redrock303/HEMlets"
)


@needs_official
def test_official_network_gives_the_same_joints(official_file, images, tmp_path, capsys):
    """The official ``Network`` with the file's values vs the imported checkpoint's pose joints
    (hmrt's soft-argmax reduces in another order: float32 rounding)."""
    from hmrt.train.checkpoint import load_checkpoint

    path, state = official_file
    out = tmp_path / "hmrt_hemlets.pt"
    assert run_cli(capsys, "--official", str(path), "--out", str(out))[0] == 0
    with official_code() as tool:
        net, _ = tool.official_network(Path(OFFICIAL_CLONE))
        net.load_state_dict(state, strict=True)
        with torch.no_grad():
            want = net.eval()(images, val=True)
        rows = tool.official_rows(net)
    assert rows == load_manifest("hemlets")["state_dict"]
    joints = pose_joints(load_checkpoint(out), images)
    assert want.std() > 0.05
    assert torch.allclose(joints, want, rtol=0.0, atol=1e-4), (joints - want).abs().max()


# ---------------------------------------------------------------------------------------------
# Slow: the whole path


@pytest.mark.slow
def test_import_export_onnx_matches_torch_and_eval_runs(official_file, tmp_path, capsys):
    from hmrt.export.parity import max_abs_diff, ort_outputs, torch_outputs, validation_crops
    from hmrt.train.checkpoint import load_checkpoint, read_checkpoint

    path, _ = official_file
    ckpt = tmp_path / "hmrt_hemlets.pt"
    onnx_path = tmp_path / "hemlets_paper.onnx"
    assert run_cli(capsys, "--official", str(path), "--out", str(ckpt))[0] == 0
    # Stand-in for a PoSh trained with hmrt: its near-zero initial head gives about the mean
    # body whatever the image, which would leave the pose network out of the comparison.
    imported = read_checkpoint(ckpt)
    imported["state_dict"]["posh.head.weight"] *= 100.0
    torch.save(imported, ckpt)
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(onnx_path)]) == 0
    capsys.readouterr()

    reference = load_checkpoint(ckpt).eval()
    crops = validation_crops(2, tuple(reference.config.input_size))
    want = torch_outputs(reference, crops.images, 2)
    assert abs(want["joints2d"][0] - want["joints2d"][1]).max() > 0.1  # outputs follow the image
    diff = max_abs_diff(want, ort_outputs(onnx_path, crops.images, 2))
    assert diff.keys() == want.keys()
    assert diff["joints2d"] <= 1e-2, (crops.source, diff)  # crop pixels
    assert all(diff[k] <= 1e-4 for k in diff if k != "joints2d"), (crops.source, diff)

    assert main(["eval", "--checkpoint", str(ckpt), "--samples", "2", "--batch-size", "2"]) == 0
    assert "hemlets/paper" in capsys.readouterr().out
