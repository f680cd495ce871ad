"""``python export/build_engine.py`` from any folder (installed or a bare checkout), and its
default output folder ``engines/`` in the current folder, which git ignores."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from onnx_fixtures import make_blob_model

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "export" / "build_engine.py"

# Runs the script with hmrt's install hidden (the editable finder and any installed copy), as
# in a checkout that was never pip-installed.
BARE = """
import runpy, sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", "")]
sys.path[:] = [p for p in sys.path if "editable" not in p]
try:
    import hmrt
    sys.exit(77)
except ImportError:
    pass
sys.argv = [sys.argv[1], *sys.argv[2:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _has_full_tensorrt() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def blob(tmp_path_factory) -> Path:
    return make_blob_model(tmp_path_factory.mktemp("script") / "blob.onnx")


@pytest.mark.parametrize("bare", [False, True], ids=["installed", "bare-checkout"])
def test_script_runs_from_another_folder(blob, tmp_path, bare):
    if _has_full_tensorrt():
        pytest.skip("full TensorRT installed: the script would build an engine")
    head = [sys.executable, "-c", BARE] if bare else [sys.executable]
    proc = subprocess.run([*head, str(SCRIPT), "--onnx", str(blob), "--fp16"],
                          capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    if proc.returncode == 77:
        pytest.skip("hmrt is importable without its editable finder here")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("hmrt: error: TensorRT is not installed"), lines[0]


def test_default_output_is_engines_in_the_current_folder(tmp_path, monkeypatch):
    import argparse

    from hmrt.export import build_engine

    parser = argparse.ArgumentParser()
    build_engine.add_arguments(parser)
    args = parser.parse_args(["--model", "danet", "--fp16"])
    monkeypatch.chdir(tmp_path)
    engine, onnx_path, _ = build_engine._names(args, "fp16")
    assert engine.resolve() == tmp_path / "engines" / "danet_edge_fp16.engine"
    assert onnx_path.resolve().parent == tmp_path / "engines"


def test_engines_folder_is_git_ignored():
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    proc = subprocess.run(["git", "check-ignore", "-q", "engines/danet_edge_fp16.engine"],
                          cwd=REPO, capture_output=True)  # fmt: skip
    assert proc.returncode == 0, "engines/ is not in .gitignore"
