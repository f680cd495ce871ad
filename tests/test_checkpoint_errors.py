"""Bad or malicious checkpoints, wherever one is loaded (export, build-engine, eval, train
--resume / --init): one line naming the file and the fix, exit code 2, never torch's advice to
retry with ``weights_only=False``, and never the file's code run. Also ``--model`` names the
zoo does not have."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hmrt.cli import main
from hmrt.runtime.errors import InputError


class _Payload:
    """Pickles as a call to ``os.system``: what a malicious checkpoint carries."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("ckpt")
    marker = d / "code_ran"
    files = {"marker": marker}
    files["evil"] = d / "evil.pt"
    torch.save({"format": "hmrt-checkpoint", "x": _Payload(marker)}, files["evil"])
    files["numpy"] = d / "numpy.pt"
    import numpy as np

    torch.save({"format": "hmrt-checkpoint", "a": np.zeros(3)}, files["numpy"])
    files["garbage"] = d / "garbage.pt"
    files["garbage"].write_bytes(b"not a checkpoint at all")
    files["empty"] = d / "empty.pt"
    files["empty"].write_bytes(b"")
    files["cut"] = d / "cut.pt"
    files["cut"].write_bytes(files["numpy"].read_bytes()[:300])
    files["list"] = d / "list.pt"
    torch.save([1, 2, 3], files["list"])
    files["folder"] = d / "folder.pt"
    files["folder"].mkdir()
    return files


KINDS = {
    "evil": "Python objects (posix.system)",
    "numpy": "Python objects",
    "garbage": "not a PyTorch checkpoint",
    "empty": "empty",
    "cut": "truncated or corrupt",
    "list": "not an hmrt checkpoint",
    "folder": "is a folder",
}


def _check_line(code: int, err: str, path: Path, needle: str) -> None:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("hmrt: error:"), err
    assert str(path) in lines[0] and needle in lines[0], lines[0]
    assert "weights_only" not in err and "Traceback" not in err
    if needle != "is a folder":
        assert "hmrt train" in lines[0]  # the fix


@pytest.mark.parametrize("kind", list(KINDS))
def test_export_and_build_engine(bad, tmp_path, capsys, kind):
    for argv in (["export", "--checkpoint", str(bad[kind]), "--out", str(tmp_path / "m.onnx")],
                 ["build-engine", "--checkpoint", str(bad[kind]), "--out", str(tmp_path)]):  # fmt: skip
        code = main(argv)
        _check_line(code, capsys.readouterr().err, bad[kind], KINDS[kind])
    assert not bad["marker"].exists()  # the payload never ran
    assert list(tmp_path.iterdir()) == []


def test_eval_and_train_resume(bad, tmp_path, capsys):
    code = main(["eval", "--checkpoint", str(bad["evil"])])
    _check_line(code, capsys.readouterr().err, bad["evil"], KINDS["evil"])
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "last.pt").write_bytes(bad["evil"].read_bytes())
    code = main(["train", "--resume", "--out", str(run_dir)])
    _check_line(code, capsys.readouterr().err, run_dir / "last.pt", KINDS["evil"])
    assert not bad["marker"].exists()


def test_train_init_loader(bad):
    """``hmrt train --init`` loads through load_weights_into."""
    from hmrt.train.checkpoint import load_weights_into

    for kind in ("evil", "garbage", "cut"):
        with pytest.raises(InputError) as info:
            load_weights_into(torch.nn.Linear(2, 2), bad[kind])
        text = str(info.value)
        assert "\n" not in text and "weights_only" not in text and str(bad[kind]) in text
    assert not bad["marker"].exists()


def test_process_output_is_one_line(bad):
    proc = subprocess.run(
        [sys.executable, "-m", "hmrt", "export", "--checkpoint", str(bad["evil"])],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "weights_only" not in proc.stderr and not bad["marker"].exists()


def test_unknown_model_name_lists_the_zoo(tmp_path, capsys):
    code = main(["export", "--model", "nosuch", "--out", str(tmp_path / "m.onnx")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "--model 'nosuch': unknown model; choose one of" in err and "danet" in err
    assert "bundled weights" not in err
    code = main(["export", "--model", "danet", "--variant", "huge"])
    err = capsys.readouterr().err
    assert code == 2 and "--variant 'huge'" in err and "edge" in err
    code = main(["build-engine", "--model", "nosuch", "--out", str(tmp_path)])
    assert code == 2 and "unknown model" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
