"""Atomic outputs: nothing half-written on failure, normal permissions on success, and write
errors as one line naming the user's path (:func:`check_writable` before the work)."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from hmrt.runtime.atomic import atomic_dir, atomic_path, check_writable, write_text_atomic
from hmrt.runtime.errors import OutputError


def test_atomic_path_replaces_only_on_success(tmp_path):
    dest = tmp_path / "out.txt"
    write_text_atomic(dest, "old")
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert dest.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_outputs_get_umask_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "f.bin") as tmp:
            tmp.write_bytes(b"x")
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "inner").write_text("y")
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "f.bin").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755


def test_atomic_dir_cleans_up_on_failure(tmp_path):
    with pytest.raises(ValueError), atomic_dir(tmp_path / "d") as tmp:
        (tmp / "x").write_text("1")
        raise ValueError
    assert list(tmp_path.iterdir()) == []


# -- write errors: one line naming the user's path, never the hidden .part file ----------------
def test_unwritable_destinations_name_the_users_path(tmp_path):
    a_file = tmp_path / "f.txt"
    a_file.write_text("x")
    for dest, needle in [
        (Path("/proc/hmrt_test/out.bin"), "/proc"),
        (a_file / "sub" / "out.bin", "is a file, not a folder"),
    ]:
        with pytest.raises(OutputError) as info, atomic_path(dest) as tmp:
            tmp.write_bytes(b"never")
        msg = str(info.value)
        assert msg.startswith(f"{dest}: cannot write") and needle in msg and ".part" not in msg
        with pytest.raises(OutputError, match="cannot write"), atomic_dir(dest):
            pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]


def test_full_disk_while_writing_names_the_destination(tmp_path):
    """A real ENOSPC from the kernel (/dev/full) inside the block becomes an OutputError."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    dest = tmp_path / "out.npz"
    with (
        pytest.raises(OutputError, match="no space left") as info,
        atomic_path(dest),
        open("/dev/full", "wb") as fh,
    ):
        fh.write(b"\0" * 65536)
    assert str(dest) in str(info.value) and ".part" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_input_errors_inside_the_block_are_not_rewritten(tmp_path):
    """A missing *input* read while writing stays the original error (not "cannot write")."""
    with pytest.raises(FileNotFoundError), atomic_path(tmp_path / "out.txt"):
        (tmp_path / "missing-input.txt").read_text()
    assert list(tmp_path.iterdir()) == []


def test_check_writable(tmp_path):
    a_file = tmp_path / "f.txt"
    a_file.write_text("x")
    assert check_writable(tmp_path / "new" / "deeper" / "out.onnx") == (
        tmp_path / "new" / "deeper" / "out.onnx"
    )
    assert check_writable(a_file) == a_file  # overwriting a file is fine
    assert check_writable(tmp_path / "d", "dir", "--save") == tmp_path / "d"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]  # created nothing
    cases = [
        (tmp_path, "file", "is a folder; give a file name"),
        (a_file, "dir", "exists and is not a folder"),
        (a_file / "x" / "out.onnx", "file", "is a file, not a folder"),
        (Path("/dev/null"), "file", "not a regular file"),
        (Path("/proc/hmrt_test.onnx"), "file", "/proc cannot hold new files"),
        (Path("/sys/hmrt_test"), "dir", "cannot write"),
    ]
    for path, kind, needle in cases:
        with pytest.raises(OutputError, match=re.escape(needle)) as info:
            check_writable(path, kind, "--out")
        assert str(info.value).startswith(f"--out {path}: "), info.value


def test_check_writable_read_only_folder(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root ignores permission bits (the /proc and /sys cases cover root)")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="no permission to create files in"):
            check_writable(ro / "out.onnx", "file", "--out")
    finally:
        ro.chmod(0o755)
