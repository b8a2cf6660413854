"""A local-directory object store: the zero-setup default."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path
from typing import Iterator

from edge.store.base import StoreError, check_key
from endpoint.wire.durable_file import TMP_PREFIX, fsync_dir, write_durably

# a temp file this old is a write cut short by a kill (a write takes milliseconds): list() deletes it as it passes
STALE_TMP_S = 3600.0


class LocalStore:
    """Objects are files under ``root``; a put is atomic and durable (temp file, fsync, rename, fsync the folder)."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        path = self._path(key)
        try:
            _make_dirs_durably(path.parent)
            write_durably(path, data)  # the bytes and the rename survive a power cut; only then does put return
        except OSError as exc:  # a full or read-only disk is a store failure: ingest retries, never acks
            raise StoreError(f"put {key!r} to {self.describe()} failed: {exc}") from exc

    def put_if_absent(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> bool:
        path = self._path(key)
        try:
            _make_dirs_durably(path.parent)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TMP_PREFIX)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.link(tmp, path)  # unlike a rename, a link never replaces: create-if-absent in one step
            except FileExistsError:
                return False
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            fsync_dir(path.parent)
            return True
        except OSError as exc:
            raise StoreError(f"put {key!r} to {self.describe()} failed: {exc}") from exc

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise StoreError(f"no object {key!r} in {self.describe()}") from None
        except OSError as exc:
            raise StoreError(f"get {key!r} from {self.describe()} failed: {exc}") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> Iterator[str]:
        # Walk only the folder the prefix names: the whole store holds every frame ever stored, and the learner
        # lists a round's frames twice a second while it collects (50,000 frames took 11 s a walk).
        folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        try:
            start = self._path(folder) if folder else self.root
        except StoreError:  # no key lives under a prefix no key may have
            return iter([])
        keys = []
        try:
            for path in start.rglob("*"):
                if path.name.startswith(TMP_PREFIX):
                    _delete_if_stale(path)
                elif path.is_file():
                    key = path.relative_to(self.root).as_posix()
                    if key.startswith(prefix):
                        keys.append(key)
        except OSError as exc:  # an unreadable folder: a StoreError, as S3Store raises, which callers handle
            raise StoreError(f"list {prefix!r} in {self.describe()} failed: {exc}") from exc
        return iter(sorted(keys))

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:  # a folder under the key's name, a read-only disk
            raise StoreError(f"delete {key!r} in {self.describe()} failed: {exc}") from exc

    def describe(self) -> str:
        return f"local:{self.root}"


def _delete_if_stale(tmp: Path) -> None:
    """Delete a temp file left by a write killed between its link and its unlink, once it is ``STALE_TMP_S`` old."""
    with contextlib.suppress(OSError):  # gone already, or another process's: the next list tries again
        if time.time() - tmp.stat().st_mtime > STALE_TMP_S:
            tmp.unlink()


def _make_dirs_durably(folder: Path) -> None:
    """Create ``folder`` and missing parents, fsyncing each new one's parent so the entries survive a power cut."""
    missing = []
    while not folder.is_dir():
        missing.append(folder)
        folder = folder.parent
    for new in reversed(missing):
        new.mkdir(exist_ok=True)
        fsync_dir(new.parent)
