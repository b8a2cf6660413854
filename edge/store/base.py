"""The object store interface every edge part uses: put, get, exists, list, delete."""

from __future__ import annotations

import re
from typing import Iterator, Protocol

_UNLISTABLE = re.compile(r"[\x00-\x1f\x7f\\]")  # control characters and the backslash


class StoreError(RuntimeError):
    """The store could not do what was asked (unreachable, refused, missing key)."""


class ObjectStore(Protocol):
    """Keys are ``/``-separated strings; values are bytes."""

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None: ...

    def put_if_absent(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> bool:
        """Write ``key`` only if it does not exist, atomically; False (nothing written) when it does."""
        ...

    def get(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str = "") -> Iterator[str]: ...

    def delete(self, key: str) -> None: ...

    def describe(self) -> str: ...


def check_key(key: str) -> str:
    """Refuse keys that could escape a prefix or a directory, and keys a store may not list back as they are:
    control characters (S3 listings are XML) and backslashes (SeaweedFS lists them as '/')."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts) or _UNLISTABLE.search(key):
        raise StoreError(f"invalid object key {key!r}")
    return key
