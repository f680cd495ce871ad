"""End to end through the command lines with DaNet (needs the bundled body model asset)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from hmrt.assets import asset_path

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(
    not asset_path("body/hmrt_body.npz").is_file(), reason="bundled body model not built yet"
)


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.slow  # the same export runs in the build_engine test below and the parity tests
def test_hmrt_export_danet_edge(tmp_path):
    out = tmp_path / "danet.onnx"
    proc = _run("-m", "hmrt", "export", "--model", "danet", "--variant", "edge",
                "--random-init", "--out", str(out), cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["hmrt.model"] == "danet" and meta["hmrt.variant"] == "edge"
    assert meta["hmrt.body_hash"] and meta["hmrt.roi_pool"] == "grid"


def test_build_engine_script_without_tensorrt(tmp_path):
    """The README command: writes and audits the ONNX, then one line and exit 2."""
    try:
        import tensorrt  # noqa: F401

        pytest.skip("full TensorRT installed")
    except ImportError:
        pass
    out = tmp_path / "engines"
    proc = _run("export/build_engine.py", "--model", "danet", "--random-init", "--fp16",
                "--out", str(out), cwd=REPO)  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("hmrt: error: TensorRT is not installed")
    assert "Traceback" not in proc.stderr
    # TensorRT 10 builds FP16 from the FP32 graph, and the file is named for what it holds.
    assert sorted(p.name for p in out.iterdir()) == ["danet_edge_fp32.onnx"]
