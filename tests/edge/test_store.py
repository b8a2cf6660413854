"""The ObjectStore contract, for the local store and the real SeaweedFS S3 server alike."""

from __future__ import annotations

import time
import uuid

import pytest

from edge.store import StoreConfig, StoreError, open_store
from edge.store.local import LocalStore
from edge.store.s3 import S3Store
from pipelines.ports import free_port


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.integration)])
def store(request, tmp_path):
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    return request.getfixturevalue("s3_store")


def test_put_get_overwrite_exists(store):
    data = bytes(range(256)) * 3
    assert not store.exists("a/b/c.bin")
    store.put("a/b/c.bin", data)
    assert store.exists("a/b/c.bin") and store.get("a/b/c.bin") == data
    store.put("a/b/c.bin", b"")
    assert store.get("a/b/c.bin") == b""
    assert not store.exists("a/b")  # a "folder" is not an object


def test_put_if_absent_writes_only_a_key_nobody_has(store):
    assert store.put_if_absent("frames/a.jpg", b"first", content_type="image/jpeg")
    assert not store.put_if_absent("frames/a.jpg", b"second")  # ingest reads this as "a redelivery"
    assert store.get("frames/a.jpg") == b"first" and list(store.list()) == ["frames/a.jpg"]


def test_keys_with_spaces_and_symbols_round_trip(store):
    key = "sp ace/a+b=c%d é~.jpg"  # S3 signs the URI-encoded path: a wrong encoding is refused
    store.put(key, b"z")
    assert store.get(key) == b"z" and store.exists(key) and list(store.list("sp ace/")) == [key]


def test_list_is_sorted_and_filtered_by_prefix(store):
    for key in ("frames/x/r00001/b.json", "frames/x/r00000/a.jpg", "frames/y/r00000/c.json", "models/m.onnx"):
        store.put(key, key.encode())
    assert list(store.list("frames/x/")) == ["frames/x/r00000/a.jpg", "frames/x/r00001/b.json"]
    assert list(store.list()) == sorted(["frames/x/r00001/b.json", "frames/x/r00000/a.jpg",
                                         "frames/y/r00000/c.json", "models/m.onnx"])
    assert list(store.list("nothing/")) == []


def test_list_takes_prefixes_that_end_mid_name_or_name_no_folder(store):
    for key in ("frames/cam-1/r00003/f1.jpg", "frames/cam-10/r00003/f1.jpg", "models/a"):
        store.put(key, b"x")
    assert list(store.list("frames/cam-1")) == ["frames/cam-1/r00003/f1.jpg", "frames/cam-10/r00003/f1.jpg"]
    assert list(store.list("frames/cam-1/r00003/f")) == ["frames/cam-1/r00003/f1.jpg"]
    assert list(store.list("fr")) == ["frames/cam-1/r00003/f1.jpg", "frames/cam-10/r00003/f1.jpg"]
    assert list(store.list("frames/cam-1/r00003/f1.jpg/")) == [] and list(store.list("frames//")) == []


def test_a_local_listing_walks_only_the_folder_its_prefix_names(tmp_path, monkeypatch):
    """It walked the whole store and filtered after: with 50,000 frames stored, listing the registry's versions
    took 11 s, and the learner lists a round's frames twice a second while it collects."""
    from pathlib import Path

    store = LocalStore(tmp_path / "store")
    for key in ("frames/cam-1/r00000/f1.jpg", "frames/cam-1/r00001/f1.jpg", "models/student/v0001/model.onnx"):
        store.put(key, b"x")
    visited, rglob = [], Path.rglob
    monkeypatch.setattr(Path, "rglob", lambda self, pattern: visited.append(self) or rglob(self, pattern))
    assert list(store.list("models/student/")) == ["models/student/v0001/model.onnx"]
    assert list(store.list("frames/cam-1/r00001/")) == ["frames/cam-1/r00001/f1.jpg"]
    assert visited == [store.root / "models" / "student", store.root / "frames" / "cam-1" / "r00001"]


def test_a_local_listing_deletes_temp_files_a_killed_write_left_once_they_are_stale(tmp_path):
    """A put_if_absent killed between its link and its unlink left its temp file for good: invisible to list()
    and removed by nothing. A fresh one may be another process's write in flight, and stays."""
    import os

    from edge.store.local import STALE_TMP_S
    from endpoint.wire.durable_file import TMP_PREFIX

    store = LocalStore(tmp_path / "store")
    store.put("frames/cam-1/r00000/f1.jpg", b"x")
    folder = store.root / "frames" / "cam-1" / "r00000"
    stale, fresh = folder / f"{TMP_PREFIX}killed", folder / f"{TMP_PREFIX}in-flight"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"half")
    old = time.time() - STALE_TMP_S - 60
    os.utime(stale, (old, old))
    assert list(store.list("frames/cam-1/")) == ["frames/cam-1/r00000/f1.jpg"]
    assert not stale.exists() and fresh.exists()


def test_delete_removes_and_tolerates_missing_keys(store):
    store.put("k/one", b"1")
    store.delete("k/one")
    assert not store.exists("k/one") and list(store.list("k/")) == []
    store.delete("k/never-there")


def test_missing_key_raises_store_error(store):
    with pytest.raises(StoreError, match="no object"):
        store.get("not/here.jpg")


# the last three are keys an S3 listing does not give back as they were (SeaweedFS: U+FFFD, and '/' for '\\')
@pytest.mark.parametrize("key", ["", "/abs", "a//b", "a/../b", "../up", "./a", "a/.", "trailing/", "o/ctl\x01x",
                                 "o/del\x7f", "o/back\\slash"])
def test_invalid_keys_are_refused(store, key):
    for call in (lambda: store.put(key, b"x"), lambda: store.get(key), lambda: store.exists(key),
                 lambda: store.delete(key)):
        with pytest.raises(StoreError, match="invalid object key"):
            call()


@pytest.mark.integration
def test_s3_prefixes_isolate_sites_in_one_bucket(s3_server):
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    site_a = S3Store(s3_server.endpoint, bucket, s3_server.access_key, s3_server.secret_key, prefix="site-a")
    site_b = S3Store(s3_server.endpoint, bucket, s3_server.access_key, s3_server.secret_key, prefix="/site-b/")
    site_a.put("frames/f.jpg", b"a")
    site_b.put("frames/f.jpg", b"b")
    assert (site_a.get("frames/f.jpg"), site_b.get("frames/f.jpg")) == (b"a", b"b")
    assert list(site_a.list()) == ["frames/f.jpg"]
    assert site_a.describe().endswith(f"/{bucket}/site-a/")


@pytest.mark.integration
def test_s3_listing_follows_continuation_pages(s3_store):
    s3_store.list_page_keys = 2
    keys = [f"k/{i}" for i in range(5)]
    for key in keys:
        s3_store.put(key, b"1")
    assert list(s3_store.list("k/")) == keys


def test_unreachable_s3_raises_store_error_quickly():
    started_s = time.monotonic()
    with pytest.raises(StoreError, match="unreachable"):
        open_store(StoreConfig(kind="s3", endpoint=f"127.0.0.1:{free_port('127.0.0.1')}"))
    assert time.monotonic() - started_s < 10


def test_open_store_local_default(tmp_path):
    store = open_store(StoreConfig(path=str(tmp_path / "s")))
    store.put("x/y", b"1")
    assert store.describe() == f"local:{(tmp_path / 's').resolve()}" and list(store.list()) == ["x/y"]


def test_local_put_fsyncs_the_file_before_the_rename_and_the_folders_after(tmp_path, monkeypatch):
    import os
    import stat

    import endpoint.wire.durable_file as durable_file

    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        mode = os.fstat(fd).st_mode
        events.append(("fsync", "dir" if stat.S_ISDIR(mode) else os.fstat(fd).st_size))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("rename", os.path.basename(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(durable_file.os, "fsync", fsync)
    monkeypatch.setattr(durable_file.os, "replace", replace)
    store = LocalStore(tmp_path / "store")
    events.clear()
    store.put("frames/cam-a/r00000/f1.json", b"{}")

    # three new folders, each entry made durable in its parent; then the bytes, the rename, the rename's folder
    assert events == [("fsync", "dir")] * 3 + [("fsync", 2), ("rename", "f1.json"), ("fsync", "dir")]
    events.clear()
    store.put("frames/cam-a/r00000/f1.jpg", b"abc")  # folders exist: no extra folder fsyncs
    assert events == [("fsync", 3), ("rename", "f1.jpg"), ("fsync", "dir")]


def test_local_disk_errors_are_store_errors(tmp_path):
    store = LocalStore(tmp_path / "store")
    (tmp_path / "store" / "frames").write_bytes(b"a file where a folder belongs")
    with pytest.raises(StoreError, match="put 'frames/x.jpg'"):
        store.put("frames/x.jpg", b"1")
    assert [p.name for p in (tmp_path / "store").iterdir()] == ["frames"]  # no temp file left behind
    (tmp_path / "store" / "models" / "v1").mkdir(parents=True)
    with pytest.raises(StoreError, match="delete 'models/v1'"):  # a folder under the key: IsADirectoryError
        store.delete("models/v1")


def _listing_page(keys: list[str], truncated: bool, token: str | None) -> tuple[bytes, bool]:
    body = ('<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>"
            + (f"<NextContinuationToken>{token}</NextContinuationToken>" if token is not None else "")
            + "".join(f"<Contents><Key>{k}</Key></Contents>" for k in keys) + "</ListBucketResult>").encode()
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body, False


@pytest.mark.parametrize("second_token", [None, "same"], ids=["no token", "the same token"])
def test_a_truncated_listing_page_without_a_new_token_is_an_error(second_token):
    """It ended the listing: the registry, counting versions from it, could publish over an existing one."""
    from edge.store.s3_http import S3HttpClient
    from tests.edge.test_s3_http import ScriptedServer

    pages = [_listing_page(["models/s/v0001/manifest.sig"], True, "same"),
             _listing_page(["models/s/v0002/manifest.sig"], True, second_token),
             _listing_page(["models/s/v0003/manifest.sig"], False, None)]
    server = ScriptedServer(pages)
    store = S3Store.__new__(S3Store)  # the listing alone: no bucket or conditional-write checks to answer
    store.endpoint, store.bucket, store.region, store.prefix = server.endpoint, "b", "us-east-1", ""
    store.client, store.list_page_keys = S3HttpClient(server.endpoint, "key", "secret"), 1000
    with pytest.raises(StoreError, match="a truncated page without a new token"):
        list(store.list("models/s/"))
