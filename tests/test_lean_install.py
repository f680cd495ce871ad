"""The README's demo line on a real lean install: ``pip install ".[ort]" && hmrt demo``.

A fresh virtual environment gets hmrt non-editable with the ``ort`` extra only (so no torch),
then runs the demo on the packaged ONNX and clip, twice: the second run loads numba's on-disk
cache. Slow (a pip install: about a minute with a wheel cache, more when pip downloads
numpy/OpenCV/numba/ONNX Runtime); ``tests/test_demo.py`` checks the same path quickly with
``import torch`` blocked in the test interpreter.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Build outputs and environments of the checkout stay behind: a copy keeps pip's in-tree build
# from writing build/ into the repository (stale files there can leak into wheels).
IGNORE = shutil.ignore_patterns(
    ".git", ".ci-venv", ".venv", "build", "dist", "*.egg-info", "__pycache__", "runs",
    "hmrt_out", ".pytest_cache", ".ruff_cache", "*.nbi", "*.nbc",
)  # fmt: skip


@pytest.mark.slow
def test_lean_install_runs_the_demo_without_torch(tmp_path):
    if not (REPO / "assets/weights/danet_edge.onnx").is_file():
        pytest.skip("the packaged demo ONNX is not in this checkout")
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=IGNORE)
    env_dir = tmp_path / "lean"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / "python"
    subprocess.run([python, "-m", "pip", "install", "-q", f"{src}[ort]"], check=True,
                   timeout=1200)  # fmt: skip
    probe = subprocess.run([python, "-c", "import torch"], capture_output=True, text=True)
    assert probe.returncode != 0 and "No module named 'torch'" in probe.stderr
    env = dict(
        os.environ, HMRT_CACHE=str(tmp_path / "cache"), PATH=f"{bin_dir}:{os.environ['PATH']}"
    )
    env.pop("NUMBA_CACHE_DIR", None)
    for run in ("first", "second"):
        proc = subprocess.run(
            [bin_dir / "hmrt", "demo", "--out", str(tmp_path / run), "--max-frames", "30"],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "person found on 30/30 frames" in proc.stdout, proc.stdout
        assert "PA-MPJPE" in proc.stdout and "exporting" not in proc.stdout
    assert not (tmp_path / "cache").exists()  # nothing was exported or generated
    # numba cached the renderer next to the installed source (a writable venv).
    assert list(env_dir.glob("lib/python*/site-packages/hmrt/runtime/render/__pycache__/*.nbi"))
