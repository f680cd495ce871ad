"""Atomic file output: write to a temporary sibling, rename into place only on success.

So an interrupted or failing command never leaves a half-written engine, video or npz behind.

Writing can fail for reasons that are the environment's, not hmrt's: no permission, a
read-only or virtual file system (``/proc``, ``/sys``), a full disk, a file where a folder is
expected. Those ``OSError`` s become one-line :class:`~hmrt.runtime.errors.OutputError` s that
name the path the user gave (never the hidden ``.part`` file) and the fix, and
:func:`check_writable` finds most of them before a long job starts.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

from hmrt.runtime.errors import OutputError

# errno values that always mean "this output cannot be written", whatever file they name.
WRITE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EFBIG, errno.EROFS}
    | ({errno.EDQUOT} if hasattr(errno, "EDQUOT") else set())
)
# errno values that mean so only when they name the output, its temporary or a parent folder
# (an input file that is missing or unreadable raises them too).
PATH_ERRNOS = frozenset(
    {
        errno.EACCES,
        errno.EPERM,
        errno.ENOTDIR,
        errno.EEXIST,
        errno.EISDIR,
        errno.ENOENT,
        errno.ENAMETOOLONG,
        errno.ELOOP,
    }
)
_PROBE_PREFIX = ".hmrt-write-test."


def _umask() -> int:
    # os.umask can only be read by setting it; restore immediately.
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (a file or a folder), relative if
    ``path`` is (messages then show the user's own spelling)."""
    p = Path(path)
    while not os.path.lexists(p) and p != p.parent:
        p = p.parent
    return p


def _blocking_file(path: Path) -> Path | None:
    """The ancestor of ``path`` that exists but is not a folder, if any."""
    p = _nearest_existing(path)
    if p != Path(path) and not os.path.isdir(p):
        return p
    return None


def _reason(exc: OSError, dest: Path, kind: str) -> str:
    """Why ``dest`` cannot be written and what to do, from the errno of ``exc``."""
    code = exc.errno
    folder = _nearest_existing(dest if kind == "dir" else dest.parent)
    if code == errno.ENOSPC or code == getattr(errno, "EDQUOT", -1):
        return (
            f"no space left on the disk of {folder} (disk full or quota reached); free some "
            "space or write to another disk"
        )
    if code == errno.EFBIG:
        return (
            "the file is too large for that file system or for this process's file-size limit "
            "(ulimit -f); write to another disk or raise the limit"
        )
    if code == errno.EROFS:
        return f"{folder} is on a read-only file system; choose a folder on a writable disk"
    if code in (errno.EACCES, errno.EPERM):
        return (
            f"no permission to create files in {folder}; choose a folder you can write to or "
            "fix its permissions"
        )
    if code in (errno.ENOTDIR, errno.EEXIST):
        blocker = _blocking_file(dest if kind == "dir" else dest.parent)
        if blocker is not None:
            return f"{blocker} is a file, not a folder; choose another path or move that file"
    if code == errno.EISDIR:
        return "it is a folder; give a file name"
    if code == errno.ENOENT:
        return (
            f"{folder} cannot hold new files (a virtual file system such as /proc or /sys, or "
            "a folder removed while hmrt ran); choose an ordinary folder"
        )
    if code == errno.ENAMETOOLONG:
        return "the path is too long for the file system; choose a shorter name"
    detail = exc.strerror or type(exc).__name__
    return f"{detail}; choose another path"


def _label(dest: Path, flag: str | None) -> str:
    return f"{flag} {dest}" if flag else str(dest)


def describe_write_error(
    exc: OSError, dest: str | os.PathLike, kind: str = "file", flag: str | None = None
) -> OutputError:
    """The one-line OutputError for ``exc``, raised while writing ``dest`` (the user's path)."""
    dest = Path(dest)
    return OutputError(f"{_label(dest, flag)}: cannot write: {_reason(exc, dest, kind)}")


def names_path(exc: OSError, paths: Iterable[Path]) -> bool:
    """True if ``exc`` names one of ``paths``, a file inside one, or a folder above one."""
    names = [Path(os.path.abspath(n)) for n in (exc.filename, exc.filename2) if n]
    for name in names:
        for p in paths:
            p = Path(os.path.abspath(p))
            if name == p or name in p.parents or p in name.parents:
                return True
    return False


def output_error(
    exc: BaseException,
    dest: str | os.PathLike,
    temporaries: Iterable[str | os.PathLike] = (),
    kind: str = "file",
    flag: str | None = None,
) -> OutputError | None:
    """An OutputError naming ``dest`` if ``exc`` is an OSError from writing it, else None.

    ``temporaries``: the hidden files/folders that stand in for ``dest`` while it is written;
    an error naming one of them is reported under ``dest``. A full disk (ENOSPC, EDQUOT,
    EFBIG) or read-only file system always counts; a missing file or permission error only
    when it names ``dest``, a temporary, or a folder on their way (else it is about an input).
    """
    if not isinstance(exc, OSError) or exc.errno is None:
        return None
    dest = Path(dest)
    if exc.errno in WRITE_ERRNOS or (
        exc.errno in PATH_ERRNOS and names_path(exc, [dest, *map(Path, temporaries)])
    ):
        return describe_write_error(exc, dest, kind, flag)
    return None


def check_writable(
    path: str | os.PathLike, kind: Literal["file", "dir"] = "file", flag: str | None = None
) -> Path:
    """Fail early, with one line naming ``path`` and the fix, if ``path`` cannot be written.

    Call it before a long job (export, calibration, an engine build, ``hmrt run --save``) so
    the user learns about a read-only folder or a typo before waiting for the result.
    ``kind="file"``: ``path`` will be a file (an existing folder or device there is an
    error); ``kind="dir"``: ``path`` will be a folder. Nothing is created: missing folders on
    the way are made later by the writer, so the check probes the closest folder that exists
    (by creating and removing a hidden empty file: permission bits alone are wrong for root
    and for /proc or /sys) and refuses a disk with no space left. ``flag`` (``"--out"``)
    prefixes the message. Returns ``path`` as a Path.
    """
    p = Path(path)
    label = _label(p, flag)
    if kind == "file":
        if os.path.isdir(p):
            raise OutputError(f"{label}: is a folder; give a file name")
        if os.path.lexists(p) and not os.path.isfile(p):
            raise OutputError(
                f"{label}: exists and is not a regular file (a device, pipe or broken link); "
                "give the path of a file to write"
            )
        folder = p.parent
    elif kind == "dir":
        if os.path.lexists(p) and not os.path.isdir(p):
            raise OutputError(
                f"{label}: exists and is not a folder; choose another path or move that file"
            )
        folder = p
    else:
        raise ValueError(f"kind must be 'file' or 'dir', got {kind!r}")
    base = _nearest_existing(folder)
    if not os.path.isdir(base):
        raise OutputError(
            f"{label}: cannot write: {base} is a file, not a folder; choose another path or "
            "move that file"
        )
    try:
        fd, probe = tempfile.mkstemp(prefix=_PROBE_PREFIX, dir=base)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise describe_write_error(exc, p, kind, flag) from exc
    with contextlib.suppress(OSError):
        st = os.statvfs(base)
        if st.f_blocks > 0 and st.f_bavail == 0:
            raise describe_write_error(OSError(errno.ENOSPC, "disk full"), p, kind, flag)
    return p


def make_dirs(path: str | os.PathLike, flag: str | None = None) -> list[Path]:
    """Create folder ``path`` and its missing parents; return the folders created, outermost
    first, so a failed job can remove exactly those (:func:`remove_new_dirs`)."""
    p = Path(path)
    missing: list[Path] = []
    q = p
    while not os.path.lexists(q) and q != q.parent:
        missing.append(q)
        q = q.parent
    missing.reverse()
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        remove_new_dirs(missing)
        raise describe_write_error(exc, p, "dir", flag) from exc
    return missing


def remove_new_dirs(created: list[Path]) -> None:
    """Remove the folders :func:`make_dirs` created, innermost first, while they are empty."""
    for d in reversed(created):
        try:
            d.rmdir()
        except OSError:
            return  # not empty (someone else's files) or already gone: stop here


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``dest``; it replaces ``dest`` if the block succeeds.

    ``suffix`` defaults to dest's own suffix, so writers that pick a format from the file
    extension (OpenCV, numpy) still work. The temporary file is removed on any exception; an
    OSError from writing (full disk, no permission, ...) becomes an OutputError naming ``dest``.
    """
    dest = Path(dest)
    sfx = dest.suffix if suffix is None else suffix
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.stem}.", suffix=f".part{sfx}", dir=dest.parent)
    except OSError as exc:
        raise describe_write_error(exc, dest) from exc
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600 files; give the result the permissions a plain open() would.
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, dest)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        err = output_error(exc, dest, [tmp_path])
        if err is not None:
            raise err from exc
        raise


@contextlib.contextmanager
def atomic_dir(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``dest`` (a directory) if the block succeeds."""
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent))
    except OSError as exc:
        raise describe_write_error(exc, dest, "dir") from exc
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700 directories
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        err = output_error(exc, dest, [tmp], kind="dir")
        if err is not None:
            raise err from exc
        raise


def write_bytes_atomic(dest: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``dest`` atomically and return the path."""
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


def write_text_atomic(dest: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``dest`` atomically and return the path."""
    return write_bytes_atomic(dest, text.encode("utf-8"))
