"""An S3 object store (MinIO in compose, SeaweedFS in tests, AWS S3) through the small client in ``s3_http``."""

from __future__ import annotations

import logging
import uuid
import xml.etree.ElementTree as ET
from typing import Iterator

from edge.store.base import StoreError, check_key
from edge.store.s3_http import S3HttpClient, S3RequestError, S3Response

log = logging.getLogger(__name__)

MAX_LIST_PAGES = 100_000  # bounds a listing a broken server keeps continuing
LIST_PAGE_KEYS = 1000  # S3's own maximum per page
_S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


class S3Store:
    """Objects live in ``bucket`` under ``prefix``; the bucket is created if missing."""

    def __init__(self, endpoint: str, bucket: str, access_key: str, secret_key: str,
                 prefix: str = "", secure: bool = False, region: str = "us-east-1", tls_ca_file: str = ""):
        self.endpoint, self.bucket, self.region = endpoint, bucket, region
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        try:
            self.client = S3HttpClient(endpoint, access_key, secret_key, region=region, secure=secure,
                                       tls_ca_file=tls_ca_file)
        except OSError as exc:
            raise StoreError(f"S3 store {self.describe()}: TLS CA file {tls_ca_file!r} is unusable: {exc}") from exc
        self.list_page_keys = LIST_PAGE_KEYS
        try:
            self._ensure_bucket()
        except S3RequestError as exc:
            raise StoreError(f"S3 store {self.describe()} unreachable: {exc}") from exc
        except StoreError as exc:  # it answered, and said no
            raise StoreError(f"S3 store {self.describe()}: {exc}") from exc
        self._check_conditional_writes()

    def _check_conditional_writes(self) -> None:
        """Refuse a server that ignores If-None-Match: ingest would store a redelivery twice, or over a conflict."""
        probe = f"_edgeloop-probe/{uuid.uuid4().hex}"  # one per open, so two ingests starting at once don't meet
        try:
            honoured = self.put_if_absent(probe, b"") and not self.put_if_absent(probe, b"")
        finally:
            self.delete(probe)
        if not honoured:
            raise StoreError(f"S3 store {self.describe()} ignores conditional writes (If-None-Match: *); "
                             f"AWS S3, MinIO since 2024 and SeaweedFS honour them")

    def _ensure_bucket(self) -> None:
        resp = self.client.request("HEAD", f"/{self.bucket}")
        if resp.status == 200:
            return
        if resp.status == 403:  # a HEAD answer has no body to name the reason
            raise StoreError(f"bucket check answered {resp.error_code()}: the server refused this access_key and "
                             f"secret_key, or they may not use bucket {self.bucket!r}")
        if resp.status != 404:
            raise StoreError(f"bucket check answered {resp.error_code()}")
        body = b""
        if self.region != "us-east-1":  # S3 wants the region spelled out everywhere else
            body = (f'<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                    f"<LocationConstraint>{self.region}</LocationConstraint></CreateBucketConfiguration>").encode()
        resp = self.client.request("PUT", f"/{self.bucket}", body=body)
        if resp.status != 200 and resp.error_code() not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise StoreError(f"creating bucket {self.bucket!r} answered {resp.error_code()}")

    def _path(self, key: str) -> str:
        return f"/{self.bucket}/{self.prefix}{check_key(key)}"

    def _call(self, what: str, key: str, method: str, ok: tuple[int, ...], **kwargs) -> S3Response:
        """One request; a status outside ``ok`` (and not 404 or 412, which callers read) is a StoreError."""
        try:
            resp = self.client.request(method, self._path(key), **kwargs)
        except S3RequestError as exc:
            raise StoreError(f"{what} {key!r} {self._where(what)} failed: {exc}") from exc
        if resp.status not in ok and resp.status not in (404, 412):
            raise StoreError(f"{what} {key!r} {self._where(what)} failed: {resp.error_code()} "
                             f"(HTTP {resp.status})")
        return resp

    def _where(self, what: str) -> str:
        return f"{'to' if what == 'put' else 'in' if what in ('stat', 'delete') else 'from'} {self.describe()}"

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        resp = self._call("put", key, "PUT", (200,), body=data, headers={"content-type": content_type})
        if resp.status != 200:
            raise StoreError(f"put {key!r} to {self.describe()} failed: {resp.error_code()}")

    def put_if_absent(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> bool:
        """Write ``key`` only if no object has it (S3 conditional write); False when one already does."""
        resp = self._call("put", key, "PUT", (200,), body=data,
                          headers={"content-type": content_type, "if-none-match": "*"})
        if resp.status == 404:
            raise StoreError(f"put {key!r} to {self.describe()} failed: {resp.error_code()}")
        return resp.status == 200

    def get(self, key: str) -> bytes:
        resp = self._call("get", key, "GET", (200,))
        if resp.status == 404:
            raise StoreError(f"no object {key!r} in {self.describe()}")
        if resp.status != 200:
            raise StoreError(f"get {key!r} from {self.describe()} failed: {resp.error_code()}")
        return resp.body

    def exists(self, key: str) -> bool:
        resp = self._call("stat", key, "HEAD", (200,))
        if resp.status == 412:
            raise StoreError(f"stat {key!r} in {self.describe()} failed: {resp.error_code()}")
        return resp.status == 200

    def list(self, prefix: str = "") -> Iterator[str]:
        names: list[str] = []
        query = {"list-type": "2", "prefix": self.prefix + prefix, "max-keys": str(self.list_page_keys)}
        for _ in range(MAX_LIST_PAGES):
            try:
                resp = self.client.request("GET", f"/{self.bucket}", query=query)
            except S3RequestError as exc:
                raise StoreError(f"list {prefix!r} in {self.describe()} failed: {exc}") from exc
            if resp.status != 200:
                raise StoreError(f"list {prefix!r} in {self.describe()} failed: {resp.error_code()}")
            try:
                root = ET.fromstring(resp.body)
            except ET.ParseError as exc:
                raise StoreError(f"list {prefix!r} in {self.describe()}: unreadable answer: {exc}") from exc
            names += [el.text or "" for el in root.iter(f"{_S3_NS}Key")]
            token = root.findtext(f"{_S3_NS}NextContinuationToken")
            if root.findtext(f"{_S3_NS}IsTruncated") != "true":
                break
            if not token or token == query.get("continuation-token"):  # ending here would pass a part as the whole
                raise StoreError(f"list {prefix!r} in {self.describe()}: a truncated page without a new token")
            query = {**query, "continuation-token": token}
        else:
            raise StoreError(f"list {prefix!r} in {self.describe()}: more than {MAX_LIST_PAGES} pages")
        # only what the prefix names: SeaweedFS reads "a//" as "a/", and a key outside self.prefix is not this store's
        return iter(sorted(n[len(self.prefix):] for n in names if n and n.startswith(query["prefix"])))

    def delete(self, key: str) -> None:
        resp = self._call("delete", key, "DELETE", (200, 204))
        if resp.status == 412:
            raise StoreError(f"delete {key!r} in {self.describe()} failed: {resp.error_code()}")

    def describe(self) -> str:
        return f"s3://{self.endpoint}/{self.bucket}/{self.prefix}"
