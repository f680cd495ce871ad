"""``hmrt import-checkpoint --model decomr``: the official layout -> hmrt checkpoint, refusals,
and the official UV convention the imported model runs with.

The released weights are not available to tests (users download them), so the official file is
built from the committed manifest (names and shapes of the official ``DPNet``/``UVNet``, read
from the official code by ``tools/decomr_official_manifest.py``) with random values, saved as the
official ``CheckpointSaver`` does: ``{"CNet": sd, "LNet": sd, "optimizer": ..., counters}``.
Default selection: the manifest against the paper model, an import read back strictly, the flat
``CNet.*`` form, every refusal (one line, exit 2, nothing written), the official transfer rule
(V downward, ``round(u (S-1))``) and an edge model with that convention exported to ONNX.
Slow: the imported paper model (61.8 M parameters) -> ``hmrt export --checkpoint`` -> ONNX
Runtime equal to torch (~1-2 min on 2 cores).
"""

from __future__ import annotations

from pathlib import Path

import import_helpers
import pytest
import torch

from hmrt.assets import asset_path
from hmrt.cli import main
from hmrt.export.import_checkpoint import LAYOUTS, load_manifest, read_official_file
from hmrt.train.models.decomr.official_keys import (
    convert_official_state_dict,
    official_to_hmrt_key,
)

pytestmark = pytest.mark.skipif(
    not asset_path("body/hmrt_body.npz").is_file(), reason="bundled body model not built yet"
)
PARTS = ("CNet", "LNet")


def manifest_rows() -> list[tuple[str, tuple[int, ...], str]]:
    return import_helpers.manifest_rows("decomr")


def official_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random values in the flattened official layout (fan-in scaled weights, norms near 1)."""
    return import_helpers.official_state("decomr", seed)


def cheap_state() -> dict[str, torch.Tensor]:
    return import_helpers.cheap_state("decomr")


def as_released(flat: dict[str, torch.Tensor]) -> dict:
    """What the official saver writes: one state dict per network, optimizer and counters."""
    out: dict = {p: {} for p in PARTS}
    for key, value in flat.items():
        part, rest = key.split(".", 1)
        out[part][rest] = value
    out.update(optimizer={"state": {}, "param_groups": [{"lr": 2.5e-4, "params": [0, 1]}]})
    out.update(epoch=30, batch_idx=0, batch_size=128, dataset_perm=[2, 0, 1], total_step_count=9)
    return out


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    return import_helpers.run_import(capsys, "decomr", *args)


@pytest.fixture(scope="module")
def paper_state() -> dict[str, torch.Tensor]:
    from hmrt.train.models import build

    return build("decomr", "paper").state_dict()


@pytest.fixture(scope="module")
def official_file(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A full random official checkpoint in the released file layout."""
    state = official_state()
    path = tmp_path_factory.mktemp("official") / "h36m_up3d.pt"
    torch.save(as_released(state), path)
    return path, state


def test_manifest_cites_the_official_code_and_maps_onto_the_paper_model(paper_state):
    manifest = load_manifest("decomr")
    source = manifest["source"]
    assert source["repository"] == "https://github.com/zengwang430521/DecoMR"
    assert len(source["commit"]) == 40 and "uv_type BF" in source["config"]
    assert manifest["num_entries"] == len(manifest["state_dict"]) == 555
    mapped = {}
    for key, shape, _ in manifest_rows():
        new = official_to_hmrt_key(key)
        if new is not None:
            mapped[new] = shape
    assert mapped.keys() == paper_state.keys()  # renames and drops only, nothing left over
    assert all(tuple(paper_state[k].shape) == s for k, s in mapped.items())
    dropped = [k for k, _, _ in manifest_rows() if official_to_hmrt_key(k) is None]
    assert dropped == ["CNet.resnet.fc.weight", "CNet.resnet.fc.bias"]


def test_import_then_load_checkpoint_strictly(official_file, tmp_path, capsys):
    from hmrt.export.import_checkpoint import _sha256
    from hmrt.train.checkpoint import load_checkpoint, read_checkpoint

    path, state = official_file
    out = tmp_path / "hmrt_decomr.pt"
    code, stdout, stderr = run_cli(capsys, "--official", str(path), "--out", str(out))
    assert code == 0, stderr
    assert f"wrote {out}" in stdout and "hmrt export --checkpoint" in stdout
    assert "mapped 553 tensors" in stderr and "2 official-only dropped" in stderr
    assert "not the SMPL BF chart" in stderr and "not meaningful" in stderr  # bundled body
    ckpt = read_checkpoint(out)
    assert ckpt["model"]["name"] == "decomr" and ckpt["model"]["variant"] == "paper"
    assert ckpt["model"]["config"]["uv_convention"] == "official"
    assert ckpt["imported_from"]["sha256"] == _sha256(path)
    model = load_checkpoint(out)  # load_state_dict is strict
    assert model.config.uv_convention == "official" and model.lnet.warp.official
    got = model.state_dict()
    want = convert_official_state_dict(state)
    assert got.keys() == want.keys()
    assert all(torch.equal(got[k], want[k].to(got[k].dtype)) for k in want)


def test_flat_state_dict_is_accepted(tmp_path):
    path = tmp_path / "flat.pt"
    torch.save(cheap_state(), path)  # already "CNet.<key>" / "LNet.<key>"
    state = read_official_file(path, LAYOUTS["decomr"])
    assert len(state) == 555 and "LNet.uv_end.1.weight" in state


def _refusal_file(kind: str, folder: Path) -> tuple[Path, list[str]]:
    """A released-layout file with one defect and the words its error line must contain."""
    path = folder / f"{kind}.pt"
    state = cheap_state()
    if kind == "missing":
        del state["LNet.hg.down_layers.1.0.conv2.weight"]
        words = ["1 missing", "LNet.hg.down_layers.1.0.conv2.weight"]
    elif kind == "unexpected":
        state["LNet.extra_head.weight"] = torch.zeros(1).expand(3, 32, 1, 1)
        words = ["1 unexpected", "LNet.extra_head.weight"]
    elif kind == "shape":  # an SMPL-UV or uv_channels=128 model, say
        state["LNet.uv_end.1.weight"] = torch.zeros(1).expand(3, 64, 1, 1)
        words = ["1 wrongly shaped", "LNet.uv_end.1.weight (3, 64, 1, 1), expected (3, 32, 1, 1)"]
    else:  # one network's state dict absent
        released = as_released(state)
        del released["LNet"]
        torch.save(released, path)
        return path, ["1 state dicts missing (LNet)", "CNet, LNet"]
    torch.save(as_released(state), path)
    return path, words


@pytest.mark.parametrize("kind", ["missing", "unexpected", "shape", "part"])
def test_refusals_are_one_line_and_write_nothing(kind, tmp_path, capsys):
    path, words = _refusal_file(kind, tmp_path)
    out = tmp_path / "out" / "hmrt_decomr.pt"
    code, stdout, stderr = run_cli(capsys, "--official", str(path), "--out", str(out))
    lines = [line for line in stderr.splitlines() if line.startswith("hmrt: ")]
    assert code == 2 and len(lines) == 1, stderr
    assert lines[0].startswith(f"hmrt: error: {path}:"), lines[0]
    assert all(w in lines[0] for w in words), lines[0]
    assert "Traceback" not in stderr and not out.exists() and not stdout


def test_official_convention_is_the_official_transfer_rule():
    """One foreground pixel with predicted ``(u, V)`` lands where the official ``warp_feature``
    puts it (row ``round(V (S-1))``, column ``round(u (S-1))``, V downward); hmrt's convention
    reads the same IUV as ``v`` toward the head: row ``floor((1 - v) S)``."""
    from hmrt.train.models.decomr.lnet import FeatureWarp

    s, h = 64, 8
    u, v = 0.30, 0.20
    iuv = torch.zeros(1, 3, h, h)
    iuv[0, :, 5, 2] = torch.tensor([1.0, u, v])
    feature = torch.zeros(1, 4, h, h)
    feature[0, :, 5, 2] = 7.0
    for official, row, col in (
        (True, round(v * (s - 1)), round(u * (s - 1))),
        (False, int((1 - v) * s), int(u * s)),
    ):
        warp = FeatureWarp((h, h), s, 0.5, official=official)
        out = warp(iuv, feature)[0]
        occupied = torch.nonzero(out[-1]).tolist()
        assert occupied == [[row, col]], (official, occupied)
        assert torch.all(out[:4, row, col] == 7.0)


def test_official_convention_exports_equal_to_torch(tmp_path):
    """Both UV scatter forms keep the flip and the rounding rule (edge model: fast)."""
    from hmrt.export.onnx_export import ExportOptions, export_model
    from hmrt.export.parity import max_abs_diff, ort_outputs, torch_outputs
    from hmrt.train.models import build

    torch.manual_seed(0)
    model = build("decomr", "edge", uv_convention="official").eval()
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1)).numpy()
    want = torch_outputs(model, images, 2)
    for form in ("matmul", "add"):
        path = tmp_path / f"{form}.onnx"
        export_model(model, path, "decomr", "edge", ExportOptions(uv_scatter=form))
        diff = max_abs_diff(want, ort_outputs(path, images, 2))
        assert diff["vertices"] <= 1e-4 and diff["cam"] <= 1e-5, (form, diff)


@pytest.mark.slow
def test_import_export_onnx_matches_torch_loaded_strictly(official_file, tmp_path, capsys):
    from hmrt.export.parity import max_abs_diff, ort_outputs, torch_outputs, validation_crops
    from hmrt.train.models import build

    path, state = official_file
    ckpt = tmp_path / "hmrt_decomr.pt"
    onnx_path = tmp_path / "decomr_paper.onnx"
    assert run_cli(capsys, "--official", str(path), "--out", str(ckpt))[0] == 0
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(onnx_path)]) == 0
    capsys.readouterr()

    reference = build("decomr", "paper", uv_convention="official").eval()
    reference.load_state_dict(convert_official_state_dict(state), strict=True)
    crops = validation_crops(2, tuple(reference.config.input_size))
    want = torch_outputs(reference, crops.images, 2)
    diff = max_abs_diff(want, ort_outputs(onnx_path, crops.images, 2))
    assert diff["joints2d"] <= 1e-2, (crops.source, diff)  # crop pixels
    assert all(diff[k] <= 1e-4 for k in diff if k != "joints2d"), (crops.source, diff)
