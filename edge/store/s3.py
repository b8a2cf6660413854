"""An S3 object store through the ``minio`` SDK (MinIO in compose, SeaweedFS in tests)."""

from __future__ import annotations

import io
import logging
from typing import Iterator

from minio import Minio
from minio.error import MinioException, S3Error
from urllib3.exceptions import HTTPError

from edge.store.base import StoreError, check_key

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 64  # kept-alive connections to the server; at least ingest's store_concurrency


class S3Store:
    """Objects live in ``bucket`` under ``prefix``; the bucket is created if missing."""

    def __init__(self, endpoint: str, bucket: str, access_key: str, secret_key: str,
                 prefix: str = "", secure: bool = False, region: str | None = None):
        import urllib3

        # maxsize: ingest writes with many threads at once; urllib3's default of 10 kept connections would
        # make the rest reconnect on every call.
        http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=5, read=30), maxsize=MAX_CONNECTIONS,
                                   retries=urllib3.Retry(total=3, backoff_factor=0.2))
        self.client = Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=secure,
                            region=region, http_client=http)
        self.endpoint, self.bucket = endpoint, bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        try:
            if not self.client.bucket_exists(bucket):
                self.client.make_bucket(bucket)
        except (MinioException, HTTPError, OSError, ValueError) as exc:
            raise StoreError(f"S3 store {self.describe()} unreachable: {exc}") from exc

    def _name(self, key: str) -> str:
        return self.prefix + check_key(key)

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        try:
            self.client.put_object(self.bucket, self._name(key), io.BytesIO(data), len(data),
                                   content_type=content_type)
        except (MinioException, HTTPError, OSError) as exc:
            raise StoreError(f"put {key!r} to {self.describe()} failed: {exc}") from exc

    def get(self, key: str) -> bytes:
        try:
            resp = self.client.get_object(self.bucket, self._name(key))
            try:
                return resp.read()
            finally:
                resp.close()
                resp.release_conn()
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject"):
                raise StoreError(f"no object {key!r} in {self.describe()}") from None
            raise StoreError(f"get {key!r} from {self.describe()} failed: {exc}") from exc
        except (MinioException, HTTPError, OSError) as exc:
            raise StoreError(f"get {key!r} from {self.describe()} failed: {exc}") from exc

    def exists(self, key: str) -> bool:
        try:
            self.client.stat_object(self.bucket, self._name(key))
            return True
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "ResourceNotFound", "NotFound"):
                return False
            raise StoreError(f"stat {key!r} in {self.describe()} failed: {exc}") from exc
        except (MinioException, HTTPError, OSError) as exc:
            raise StoreError(f"stat {key!r} in {self.describe()} failed: {exc}") from exc

    def list(self, prefix: str = "") -> Iterator[str]:
        try:
            names = [o.object_name for o in self.client.list_objects(self.bucket, prefix=self.prefix + prefix,
                                                                      recursive=True)]
        except (MinioException, HTTPError, OSError) as exc:
            raise StoreError(f"list {prefix!r} in {self.describe()} failed: {exc}") from exc
        return iter(sorted(n[len(self.prefix):] for n in names if n is not None))

    def delete(self, key: str) -> None:
        try:
            self.client.remove_object(self.bucket, self._name(key))
        except (MinioException, HTTPError, OSError) as exc:
            raise StoreError(f"delete {key!r} in {self.describe()} failed: {exc}") from exc

    def describe(self) -> str:
        return f"s3://{self.endpoint}/{self.bucket}/{self.prefix}"
