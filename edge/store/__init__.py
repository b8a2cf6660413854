"""Object storage for frames, labels and models."""

from __future__ import annotations

from pathlib import Path

from edge.store.base import ObjectStore, StoreError
from edge.store.config import StoreConfig


def open_store(config: StoreConfig) -> ObjectStore:
    """Open the configured store; S3 support is imported only when asked for."""
    if config.kind == "local":
        from edge.store.local import LocalStore

        return LocalStore(config.path)
    from edge.store.s3 import S3Store

    secret_key = Path(config.secret_key_file).read_text().strip() if config.secret_key_file else config.secret_key
    return S3Store(config.endpoint, config.bucket, config.access_key, secret_key, prefix=config.prefix,
                   secure=config.secure, region=config.region, tls_ca_file=config.tls_ca_file)


__all__ = ["ObjectStore", "StoreConfig", "StoreError", "open_store"]
