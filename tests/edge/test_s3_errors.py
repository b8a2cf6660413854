"""The S3 client against failures: a wrong secret, a server that goes down and comes back, a 5xx answer."""

from __future__ import annotations

import http.server
import threading
import uuid

import pytest

from edge.store import StoreError
from edge.store.s3 import S3Store
from pipelines.s3_server import SeaweedS3

pytestmark = pytest.mark.integration


def test_a_wrong_secret_is_refused_with_the_servers_reason(s3_server):
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    good = S3Store(s3_server.endpoint, bucket, s3_server.access_key, s3_server.secret_key)
    with pytest.raises(StoreError, match="bucket check answered HTTP 403: the server refused this access_key"):
        S3Store(s3_server.endpoint, bucket, s3_server.access_key, "not-the-secret")
    forged = S3Store(s3_server.endpoint, bucket, s3_server.access_key, s3_server.secret_key)
    forged.client._secret_key, forged.client._signing_day = "not-the-secret", ""  # signs with a wrong key now
    with pytest.raises(StoreError, match=r"SignatureDoesNotMatch \(HTTP 403\)"):
        forged.put("frames/x.jpg", b"1")
    assert not good.exists("frames/x.jpg")


def test_a_store_that_goes_down_fails_each_call_and_works_again_when_back(tmp_path):
    server = SeaweedS3(workdir=tmp_path / "s3").start()
    try:
        store = S3Store(server.endpoint, "outage", server.access_key, server.secret_key)
        store.put("a", b"1")
        server.stop()
        server.start()  # the kept-alive connection is dead now; the next call must open a fresh one
        store.put("b", b"2")
        server.stop()
        for call in (lambda: store.put("c", b"3"), lambda: store.get("a"), lambda: store.exists("a"),
                     lambda: store.put_if_absent("c", b"3"), lambda: list(store.list())):
            with pytest.raises(StoreError, match="failed"):
                call()
        server.start()
        assert store.put_if_absent("c", b"3")
        assert [store.get(k) for k in store.list()] == [b"1", b"2", b"3"]
    finally:
        server.wipe()


class _Forgetful(http.server.BaseHTTPRequestHandler):
    """An S3 stand-in that ignores If-None-Match: every PUT succeeds, as an old server's would."""

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_PUT(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.do_HEAD()

    do_DELETE = do_HEAD

    def log_message(self, *args):
        pass


def test_a_server_that_ignores_conditional_writes_is_refused_at_open():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Forgetful)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(StoreError, match="ignores conditional writes"):
            S3Store(f"127.0.0.1:{server.server_address[1]}", "old", "k", "s")
    finally:
        server.shutdown()
        server.server_close()


class _Busy(_Forgetful):
    """Honours conditional writes while ``busy`` is off (the store opens), then answers 503 SlowDown to all."""

    busy = False
    keys: set[str] = set()

    def do_PUT(self):
        if self.busy:
            return self._busy()
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("If-None-Match") == "*" and self.path in self.keys:
            self.send_response(412)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.keys.add(self.path)
        self.do_HEAD()

    def _busy(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b"<?xml version='1.0'?><Error><Code>SlowDown</Code><Message>busy</Message></Error>"
        self.send_response(503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._busy()

    def do_DELETE(self):
        return self._busy() if self.busy else self.do_HEAD()


def test_a_5xx_answer_is_a_store_error_naming_the_s3_code():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Busy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        store = S3Store(f"127.0.0.1:{server.server_address[1]}", "busy", "k", "s")
        _Busy.busy = True
        for call in (lambda: store.put("a", b"1"), lambda: store.put_if_absent("a", b"1"), lambda: store.get("a"),
                     lambda: store.delete("a"), lambda: list(store.list())):
            with pytest.raises(StoreError, match=r"SlowDown"):
                call()
    finally:
        server.shutdown()
        server.server_close()
