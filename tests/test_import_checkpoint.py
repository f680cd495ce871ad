"""``hmrt import-checkpoint``: official DaNet layout -> hmrt checkpoint -> ONNX, and refusals.

The released weights are not available to tests (users download them), so the official file is
built from the committed manifest (names and shapes read from the official code by
``tools/danet_official_manifest.py``) with random values. Default selection: the manifest
against the paper model, an import read back strictly, ``--body``, and every refusal (one line,
exit 2, nothing written). Slow: import -> ``hmrt export --checkpoint`` -> ONNX Runtime outputs
equal to the torch model loaded strictly from the same mapped state (~50 s on 2 cores).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import import_helpers
import pytest
import torch
from body_helpers import write_synthetic_body

from hmrt.assets import asset_path
from hmrt.cli import main
from hmrt.export.import_checkpoint import load_manifest, read_official_file
from hmrt.train.models.danet.official_keys import (
    convert_official_state_dict,
    official_to_hmrt_key,
)

pytestmark = pytest.mark.skipif(
    not asset_path("body/hmrt_body.npz").is_file(), reason="bundled body model not built yet"
)
SMPL_BUFFERS = {  # what an official file saved with its SMPL layer would add (dropped on import)
    "iuv2smpl.smpl.v_template": (6890, 3),
    "iuv2smpl.smpl.J_regressor_extra": (9, 6890),
}


def manifest_rows() -> list[tuple[str, tuple[int, ...], str]]:
    return import_helpers.manifest_rows("danet")


def _danet_values(key: str, leaf: str, shape: tuple[int, ...], g: torch.Generator):
    """DaNet's tensors beyond the default rule: a small camera/shape head (random ResNet
    features are large, so outputs stay metre-scale), identity mean rotations (a
    well-conditioned Gram-Schmidt), positive RoI ratios and camera scale."""
    if leaf == "weight" and len(shape) >= 2 and "final_layer" in key:
        return torch.randn(shape, generator=g) / math.sqrt(math.prod(shape[1:])) * 1e-3
    if leaf == "mean_pose":
        eye6d = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0]).repeat(24).reshape(shape)
        return eye6d + 0.1 * torch.randn(shape, generator=g)
    if leaf in ("learned_ratio", "mean_cam_shape", "edge_importance"):
        return 0.5 + 0.5 * torch.rand(shape, generator=g)
    if leaf == "learned_offset":
        return 0.05 * torch.rand(shape, generator=g)
    return None


def official_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random values in the official layout, scaled like trained weights (activations O(1))."""
    return import_helpers.official_state("danet", seed, _danet_values)


def cheap_state() -> dict[str, torch.Tensor]:
    return import_helpers.cheap_state("danet")


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    return import_helpers.run_import(capsys, "danet", *args)


@pytest.fixture(scope="module")
def paper_state() -> dict[str, torch.Tensor]:
    from hmrt.train.models import build

    with torch.device("meta"):  # names and shapes only: no 390 MB of weights
        return build("danet", "paper").state_dict()


@pytest.fixture(scope="module")
def official_file(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A full random official checkpoint as the official saver writes it (+ SMPL buffers)."""
    state = official_state()
    state.update({k: torch.ones(s) for k, s in SMPL_BUFFERS.items()})
    path = tmp_path_factory.mktemp("official") / "danet_model_h36m_itw.pt"
    torch.save(
        {"model": state, "optimizer": {"state": {}}, "epoch": 3, "dataset_perm": [2, 0]}, path
    )
    return path, state


def test_manifest_cites_the_official_code_and_maps_onto_the_paper_model(paper_state):
    manifest = load_manifest("danet")
    source = manifest["source"]
    assert source["repository"].startswith("https://github.com/HongwenZhang/")
    assert len(source["commit"]) == 40 and source["config"] == "configs/danet_default.yaml"
    assert manifest["num_entries"] == len(manifest["state_dict"])
    mapped = {}
    for key, shape, _ in manifest_rows():
        new = official_to_hmrt_key(key)
        if new is not None:
            mapped[new] = shape
    assert mapped.keys() == paper_state.keys()  # renames and drops only, nothing left over
    assert all(tuple(paper_state[k].shape) == s for k, s in mapped.items())


def test_import_then_load_checkpoint_strictly(official_file, tmp_path, capsys):
    from hmrt.export.import_checkpoint import _sha256
    from hmrt.train.checkpoint import load_checkpoint, read_checkpoint

    path, state = official_file
    out = tmp_path / "hmrt_danet.pt"
    code, stdout, stderr = run_cli(capsys, "--official", str(path), "--out", str(out))
    assert code == 0, stderr
    assert f"wrote {out}" in stdout and "hmrt export --checkpoint" in stdout
    assert "open body model" in stderr and "shapes (betas) do not" in stderr
    ckpt = read_checkpoint(out)
    assert ckpt["model"]["name"] == "danet" and ckpt["model"]["variant"] == "paper"
    assert ckpt["imported_from"]["sha256"] == _sha256(path)
    assert ckpt["train_config"]["body"] is None
    model = load_checkpoint(out)  # load_state_dict is strict
    assert ckpt["body_hash"] == model.body_hash
    got = model.state_dict()
    want = convert_official_state_dict(state)
    assert got.keys() == want.keys()
    assert all(torch.equal(got[k], want[k].to(got[k].dtype)) for k in want)


def test_body_option_is_recorded_and_rebuilt(tmp_path, capsys):
    from hmrt.train.checkpoint import load_checkpoint

    body = write_synthetic_body(tmp_path / "smpl_like.npz", posedirs=True)
    official = tmp_path / "official.pt"
    torch.save(cheap_state(), official)  # a bare state dict is accepted too
    out = tmp_path / "with_body.pt"
    code, _, stderr = run_cli(
        capsys, "--official", str(official), "--body", str(body), "--out", str(out)
    )
    assert code == 0, stderr
    assert "warning" not in stderr
    model = load_checkpoint(out)  # rebuilds the body from train_config.body
    assert model.body.layer.n_verts < 1000 and model.body.layer.has_pose_correctives
    assert torch.load(out, weights_only=True)["train_config"]["body"] == str(body.resolve())


class Payload:
    """Unpickling this would create a marker file: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.mknod, (str(self.marker),))


def _refusal_file(kind: str, folder: Path) -> tuple[Path, list[str]]:
    """An official file with one defect and the words its error line must contain."""
    path = folder / f"{kind}.pt"
    state = cheap_state()
    if kind == "missing":
        del state["iuv2smpl.smpl_para_Outs.refine_gcn.gc.0.weight"]
        words = ["1 missing", "iuv2smpl.smpl_para_Outs.refine_gcn.gc.0.weight"]
    elif kind == "unexpected":
        state["img2iuv.iuv_est.extra_head.weight"] = torch.zeros(1).expand(4, 48, 1, 1)
        words = ["1 unexpected", "img2iuv.iuv_est.extra_head.weight"]
    elif kind == "shape":
        state["img2iuv.iuv_est.final_pred.predict_u.weight"] = torch.zeros(1).expand(26, 48, 3, 3)
        words = ["1 wrongly shaped", "(26, 48, 3, 3), expected (25, 48, 3, 3)"]
    elif kind == "many-missing":
        state = {k: v for k, v in state.items() if not k.startswith("img2iuv.iuv_est.stage4")}
        words = ["missing (img2iuv.iuv_est.stage4.", "more)"]
    elif kind == "not-a-checkpoint":
        path.write_text("<html>Google Drive: virus scan warning</html>")
        return path, ["not a PyTorch checkpoint", "re-download"]
    else:  # code
        torch.save({"model": state, "x": Payload(folder / "PWNED")}, path)
        return path, ["refused", "posix.mknod", "never unpickles"]
    torch.save({"model": state}, path)
    return path, words


@pytest.mark.parametrize(
    "kind", ["missing", "unexpected", "shape", "many-missing", "not-a-checkpoint", "code"]
)
def test_refusals_are_one_line_and_write_nothing(kind, tmp_path, capsys):
    path, words = _refusal_file(kind, tmp_path)
    out = tmp_path / "out" / "hmrt_danet.pt"
    code, stdout, stderr = run_cli(capsys, "--official", str(path), "--out", str(out))
    lines = [line for line in stderr.splitlines() if line.startswith("hmrt: ")]
    assert code == 2 and len(lines) == 1, stderr
    assert lines[0].startswith(f"hmrt: error: {path}:"), lines[0]
    assert all(w in lines[0] for w in words), lines[0]
    assert "weights_only" not in stderr and "Traceback" not in stderr
    assert not (tmp_path / "PWNED").exists()
    assert not out.exists() and not stdout


def test_unwritable_output_is_refused_before_reading(tmp_path, capsys):
    path, _ = _refusal_file("code", tmp_path)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    code, _, stderr = run_cli(capsys, "--official", str(path), "--out", str(blocker / "x.pt"))
    assert code == 2 and "cannot write" in stderr and "--out" in stderr, stderr
    assert "reading" not in stderr  # refused before the input was opened
    code, _, stderr = run_cli(capsys, "--official", str(path), "--out", str(path))
    assert code == 2 and "is the official file itself" in stderr


def test_read_official_file_accepts_a_bare_state_dict(tmp_path):
    from hmrt.export.import_checkpoint import LAYOUTS

    path = tmp_path / "bare.pt"
    torch.save(cheap_state(), path)
    state = read_official_file(path, LAYOUTS["danet"])
    assert len(state) == load_manifest("danet")["num_entries"]


@pytest.mark.slow
def test_import_export_onnx_matches_torch_loaded_strictly(official_file, tmp_path, capsys):
    import onnx

    from hmrt.export.parity import max_abs_diff, ort_outputs, torch_outputs, validation_crops
    from hmrt.train.models import build

    path, state = official_file
    ckpt = tmp_path / "hmrt_danet.pt"
    onnx_path = tmp_path / "danet_paper.onnx"
    assert run_cli(capsys, "--official", str(path), "--out", str(ckpt))[0] == 0
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(onnx_path)]) == 0
    capsys.readouterr()

    reference = build("danet", "paper").eval()
    reference.load_state_dict(convert_official_state_dict(state), strict=True)
    crops = validation_crops(4, tuple(reference.config.input_size))
    want = torch_outputs(reference, crops.images, 2)
    got = ort_outputs(onnx_path, crops.images, 2)
    diff = max_abs_diff(want, got)
    assert diff["joints2d"] <= 1e-2, (crops.source, diff)  # crop pixels
    assert all(diff[k] <= 1e-4 for k in diff if k != "joints2d"), (crops.source, diff)
    meta = {
        p.key: p.value for p in onnx.load(str(onnx_path), load_external_data=False).metadata_props
    }
    assert meta["hmrt.body_hash"] == reference.body_hash and meta["hmrt.variant"] == "paper"
