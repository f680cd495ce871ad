"""Package-level contracts: layout, torch-free runtime, CLI dispatch, style."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_subpackages_import():
    import hmrt
    import hmrt.calib
    import hmrt.export
    import hmrt.runtime
    import hmrt.train

    assert hmrt.__version__


def test_runtime_never_imports_torch():
    """Import every module under hmrt.runtime in a fresh interpreter; torch must stay unloaded."""
    code = (
        "import sys, importlib, pkgutil, hmrt.runtime\n"
        "mods = [m.name for m in pkgutil.walk_packages(hmrt.runtime.__path__, 'hmrt.runtime.')]\n"
        "for m in mods: importlib.import_module(m)\n"
        "bad = [m for m in sys.modules if m == 'torch' or m.startswith(('torch.', 'hmrt.train', 'hmrt.calib', 'hmrt.export'))]\n"
        "print(len(mods)); sys.exit(1 if bad else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cli_help_and_unknown_command():
    proc = subprocess.run([sys.executable, "-m", "hmrt", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "synth" in proc.stdout and "body" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "hmrt", "nope"], capture_output=True, text=True)
    assert proc.returncode == 2


def test_ci_runs_readme_test_command():
    readme = (REPO / "README.md").read_text()
    assert "<!-- test-command -->" in readme
    assert "README.md" in (REPO / ".ci" / "run").read_text()


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff not installed")
def test_ruff_lint_and_format_clean():
    lint = subprocess.run(["ruff", "check", str(REPO)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout[-3000:]
    fmt = subprocess.run(["ruff", "format", "--check", str(REPO)], capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stdout[-3000:]
