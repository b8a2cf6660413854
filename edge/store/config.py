"""Which object store to open, read once from the entry point's config."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from endpoint.wire.config_base import StrictConfig


class StoreConfig(StrictConfig):
    """``local`` needs only a directory; ``s3`` needs an endpoint, a bucket and keys."""

    kind: Literal["local", "s3"] = Field("local", description="local directory or S3-compatible server")
    path: str = Field("edgeloop-data/store", description="root directory of the local store")
    endpoint: str = Field("127.0.0.1:9000", description="S3 host:port")
    bucket: str = Field("edgeloop", description="S3 bucket")
    prefix: str = Field("", description="key prefix inside the bucket, e.g. one per edge site")
    access_key: str = Field("minioadmin", description="S3 access key")
    secret_key: str = Field("minioadmin", description="S3 secret key")
    secret_key_file: str = Field("", description="read the S3 secret key from this file instead (a Docker "
                                 "secret, made by deploy/make-secrets.sh)")
    secure: bool = Field(False, description="use HTTPS")
    tls_ca_file: str = Field("", description="with secure: trust the server's certificate only if this CA file "
                             "signed it (a private CA, e.g. deploy/make-secrets.sh's); empty: the system's CAs")
    region: str = Field("us-east-1", pattern=r"^[a-z0-9-]+$", description="S3 region requests are signed for "
                        "(MinIO and SeaweedFS accept us-east-1)")
