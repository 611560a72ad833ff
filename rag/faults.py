"""Write failures turned into errors that say what happened, a full disk above all; and
`fsync_path`, the one way files and folders are flushed to disk.

A build that runs out of space fails in SQLite ("database or disk is full"), NumPy, FAISS
(a RuntimeError from its C++ writer) or plain file writes (ENOSPC); each becomes one
IndexWriteError naming the full filesystem. The build's stage is removed by the caller and
the live index, never written by a build, stays as it was.
"""
from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from rag.errors import IndexWriteError

_NEARLY_FULL = 256 * 1024  # bytes free below which a failed write is put down to a full disk


def write_error(e: BaseException, where: Path) -> IndexWriteError | None:
    """The IndexWriteError for a failed write into `where` (a build's stage), saying so when
    the disk is full; None when `e` is not a write failure (the caller re-raises it)."""
    if is_disk_full(e, where):
        return disk_full_error(where)
    if isinstance(e, OSError):
        return IndexWriteError(f"Cannot write the index into {where}: {e.strerror or e}")
    return None


def disk_full_error(where: Path) -> IndexWriteError:
    """The one message for a build that ran out of space while writing into `where`."""
    return IndexWriteError(f"No space left on {_mount_of(where)} (writing {where}); the "
                           "previous index is untouched. Free some space, then build again.")


def is_disk_full(e: BaseException, where: Path | None = None) -> bool:
    """True for the ways a full disk surfaces: ENOSPC/EDQUOT, SQLite's "database or disk is
    full", or any write error (NumPy's short writes, FAISS's RuntimeError) while the
    filesystem of `where` has no space left."""
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if not isinstance(e, (OSError, sqlite3.Error, RuntimeError)):
        return False
    text = str(e).lower()
    return "disk is full" in text or "no space left" in text or (
        where is not None and _free_bytes(where) < _NEARLY_FULL)


def _free_bytes(path: Path) -> int:
    try:
        st = os.statvfs(_mount_of(path))
    except OSError:
        return _NEARLY_FULL
    return st.f_bavail * st.f_frsize


def _mount_of(path: Path) -> Path:
    """The mount point holding `path` (what the user must free space on)."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    while not os.path.ismount(path):
        path = path.parent
    return path


def fsync_path(path: Path) -> None:
    """Flush a file's or a folder's data (a folder: its entries, after a rename) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
