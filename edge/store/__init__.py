"""Object storage for frames, labels and models."""

from __future__ import annotations

from edge.store.base import ObjectStore, StoreError
from edge.store.config import StoreConfig


def open_store(config: StoreConfig) -> ObjectStore:
    """Open the configured store; S3 support is imported only when asked for."""
    if config.kind == "local":
        from edge.store.local import LocalStore

        return LocalStore(config.path)
    from edge.store.s3 import S3Store

    return S3Store(config.endpoint, config.bucket, config.access_key, config.secret_key,
                   prefix=config.prefix, secure=config.secure)


__all__ = ["ObjectStore", "StoreConfig", "StoreError", "open_store"]
