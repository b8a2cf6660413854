"""Files that survive a kill or a power cut: written aside, fsynced, renamed into place, the folder fsynced.

A reader sees the old file or the new one, never half of one. Temp files start with ``TMP_PREFIX`` so a
folder's owner can tell a write cut short by a crash from its own files.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

TMP_PREFIX = ".tmp-"


def fsync_dir(folder: str | Path) -> None:
    """Make the folder's entries (a rename, a new file) durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: str | Path, data: bytes, sync_dir: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically; with ``sync_dir`` the rename too survives a power cut."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TMP_PREFIX)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())  # the bytes are on disk before the name points at them
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):  # a half-written temp file would hold disk space until restart
            Path(tmp).unlink(missing_ok=True)
        raise
    if sync_dir:
        fsync_dir(path.parent)
