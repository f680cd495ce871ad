"""``hmrt body info`` / ``hmrt body import-smpl``: output, exit codes, one-line errors."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest
from body_helpers import synthetic_body_arrays, write_synthetic_body

from hmrt.cli import main
from hmrt.runtime.body import BodyModel


def test_info_prints_counts_licence_and_hash(tmp_path, capsys):
    path = write_synthetic_body(tmp_path / "body.npz")
    assert main(["body", "info", str(path)]) == 0
    out = capsys.readouterr().out
    for expected in (
        "vertices:         504",
        "faces:            672",
        "joints:           24",
        "betas:            10",
        "pose correctives: no",
        "surface data:     vt, ft, dp_I",
        "licence:          synthetic test body (CC0)",
        f"hash:             {BodyModel(path).hash}",
        "kB)",
    ):
        assert expected in out, expected


def test_import_smpl_writes_a_loadable_model_and_prints_its_info(tmp_path, capsys):
    arrays = synthetic_body_arrays(posedirs=True, surface=False)
    model = {k: arrays[k] for k in ("v_template", "shapedirs", "posedirs", "weights", "f")}
    model["J_regressor"] = arrays["J_regressor"]
    model["kintree_table"] = arrays["kintree_table"]
    src = tmp_path / "SMPL_FEMALE.pkl"
    src.write_bytes(pickle.dumps(model, protocol=2))
    out = tmp_path / "female.npz"
    assert main(["body", "import-smpl", str(src), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert f"wrote {out}" in captured.err
    assert "pose correctives: yes" in captured.out and "surface data:     none" in captured.out
    assert BodyModel(out).n_verts == 504


@pytest.mark.parametrize(
    "args, content",
    [
        (["body", "info", "{dir}/missing.npz"], None),
        (["body", "info", "{dir}/corrupt.npz"], b"PK\x03\x04 truncated"),
        (["body", "import-smpl", "{dir}/corrupt.pkl", "--out", "{dir}/o.npz"], b"\x80\x02garbage"),
        (["body", "import-smpl", "{dir}/missing.pkl"], None),
    ],
)
def test_bad_files_exit_2_with_one_line(tmp_path, capsys, args, content):
    args = [a.replace("{dir}", str(tmp_path)) for a in args]
    if content is not None:
        (tmp_path / args[2].rsplit("/", 1)[1]).write_bytes(content)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hmrt: error: ") and "\n" not in err and args[2] in err
    assert not (tmp_path / "o.npz").exists()


def test_exit_code_and_message_from_a_real_process(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "hmrt", "body", "info", str(tmp_path / "nope.npz")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "body model file not found" in proc.stderr


def test_info_on_the_bundled_model(capsys):
    assert main(["body", "info"]) == 0
    out = capsys.readouterr().out
    body = BodyModel()
    assert f"vertices:         {body.n_verts}" in out and "joints:           24" in out
    assert "betas:            10" in out and f"hash:             {body.hash}" in out
    assert np.isfinite(body.v_template).all()
