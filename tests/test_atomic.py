"""Atomic outputs: nothing half-written on failure, normal permissions on success."""

from __future__ import annotations

import os
import stat

import pytest

from hmrt.runtime.atomic import atomic_dir, atomic_path, write_text_atomic


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
