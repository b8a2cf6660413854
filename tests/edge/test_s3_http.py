"""The S3 client's HTTP/1.1 reading against a scripted server: chunked bodies, 1xx, HEAD, bounded errors, reuse."""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest

from edge.store.s3_http import MAX_ERROR_BODY_BYTES, S3HttpClient, S3RequestError


class ScriptedServer:
    """Answers each request with the next scripted bytes; counts connections; closes one when told to.

    ``close`` "reset" waits a moment after the answer, then resets the connection (a server that died mid-answer).
    """

    def __init__(self, answers: list[tuple[bytes, bool]]):
        self.answers, self.requests, self.connections = list(answers), [], 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while self.answers:
            conn, _ = self.sock.accept()
            self.connections += 1
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        try:
            self._answer(conn)
        except OSError:  # the client reset a connection it dropped with our answer unread
            pass

    def _answer(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            while self.answers:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(buf) < length:
                    buf += conn.recv(65536)
                self.requests.append((head.split(b"\r\n")[0].decode(), buf[:length]))
                buf = buf[length:]
                answer, close = self.answers.pop(0)
                conn.sendall(answer)
                if close == "reset":
                    time.sleep(0.3)  # the client reads what came first
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                if close:
                    return


def _client(server: ScriptedServer) -> S3HttpClient:
    return S3HttpClient(server.endpoint, "key", "secret")


def test_chunked_body_with_trailers_then_the_connection_is_reused():
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n")
    server = ScriptedServer([(chunked, False), (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", False)])
    client = _client(server)
    resp = client.request("GET", "/b/k")
    assert (resp.status, resp.body, resp.headers["transfer-encoding"]) == (200, b"hello, world", "chunked")
    assert client.request("PUT", "/b/k2", body=b"abc").body == b"ok"
    assert server.connections == 1
    assert server.requests[1] == ("PUT /b/k2 HTTP/1.1", b"abc")


def test_interim_1xx_and_a_head_answers_length_are_skipped():
    server = ScriptedServer([
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", False),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 12345\r\n\r\n", False),  # HEAD: a length, no body
        (b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", False),
    ])
    client = _client(server)
    assert client.request("GET", "/b/k").body == b"abc"
    assert client.request("HEAD", "/b/k").body == b""
    assert client.request("GET", "/b/gone").status == 404
    assert server.connections == 1


def test_a_huge_error_body_is_cut_and_its_connection_dropped():
    error = b"<Error><Code>SlowDown</Code></Error>" + b" " * (2 * MAX_ERROR_BODY_BYTES)
    server = ScriptedServer([(b"HTTP/1.1 503 Slow Down\r\nContent-Length: %d\r\n\r\n" % len(error) + error, False),
                             (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", False)])
    client = _client(server)
    resp = client.request("PUT", "/b/k", body=b"1")
    assert (resp.status, resp.error_code(), len(resp.body)) == (503, "SlowDown", MAX_ERROR_BODY_BYTES)
    assert client.request("PUT", "/b/k", body=b"1").status == 200
    assert server.connections == 2  # the unread tail was not taken for the next answer


def test_a_connection_the_server_closed_is_reopened_once_and_connection_close_is_honoured():
    server = ScriptedServer([(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", True),  # closes silently
                             (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\na", True),
                             (b"HTTP/1.0 200 OK\r\n\r\nuntil close", True)])
    client = _client(server)
    assert client.request("PUT", "/b/k", body=b"1").status == 200
    assert client.request("GET", "/b/k").body == b"a"  # sent on the dead socket first, then on a new one
    assert client.request("GET", "/b/k").body == b"until close"
    assert server.connections == 3


def test_garbage_instead_of_http_is_a_request_error():
    server = ScriptedServer([(b"SSH-2.0-OpenSSH\r\n\r\n", True)])
    with pytest.raises(S3RequestError, match="not an HTTP answer"):
        _client(server).request("GET", "/b/k")


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 100000000000000000000\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffffffffff\r\nab",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\nabc\r\n0\r\n\r\n",
], ids=["content-length", "chunk-size", "negative-chunk"])
def test_a_body_size_beyond_any_object_is_refused_before_allocating(answer):
    server = ScriptedServer([(answer, False), (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", False)])
    client = _client(server)
    with pytest.raises(S3RequestError, match="exceeds|bad chunk size"):
        client.request("GET", "/b/k")
    assert client.request("GET", "/b/k").body == b"ok"  # on a fresh connection
    assert server.connections == 2


def test_a_reset_after_the_answer_began_does_not_send_the_request_again():
    """Only a socket that died before any answer is retried: here the server took the PUT, then reset."""
    server = ScriptedServer([(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", False),
                             (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab", "reset"),
                             (b"HTTP/1.1 412 Precondition Failed\r\nContent-Length: 0\r\n\r\n", False)])
    client = _client(server)
    assert client.request("GET", "/b/k").status == 200
    with pytest.raises(S3RequestError, match="ConnectionReset"):
        client.request("PUT", "/b/k2", body=b"abc", headers={"if-none-match": "*"})
    assert [line for line, _ in server.requests] == ["GET /b/k HTTP/1.1", "PUT /b/k2 HTTP/1.1"]


def _trickling_store(declared_bytes: int, byte_every_s: float) -> S3HttpClient:
    """A client of a server that answers 200 with ``declared_bytes`` of body, then sends 40 of them, one at a time."""
    listener = socket.create_server(("127.0.0.1", 0))

    def trickle() -> None:
        conn, _ = listener.accept()
        with conn:
            while b"\r\n\r\n" not in conn.recv(65536):
                pass
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % declared_bytes)
            try:
                for _ in range(40):
                    conn.sendall(b"x")
                    time.sleep(byte_every_s)
            except OSError:  # the client gave up and closed
                pass

    threading.Thread(target=trickle, daemon=True).start()
    return S3HttpClient(f"127.0.0.1:{listener.getsockname()[1]}", "key", "secret")


def test_a_store_that_trickles_its_answer_is_cut_off_at_the_answer_deadline(monkeypatch):
    """Each byte comes well inside READ_TIMEOUT_S, so only a deadline for the whole answer ends the wait."""
    import edge.store.s3_http as s3_http

    monkeypatch.setattr(s3_http, "ANSWER_DEADLINE_S", 0.3, raising=False)
    monkeypatch.setattr(s3_http, "MIN_BODY_BYTES_PER_S", 10**9, raising=False)  # the 40-byte body adds ~nothing
    client = _trickling_store(declared_bytes=40, byte_every_s=0.05)  # 2 s for the whole body
    started = time.monotonic()
    with pytest.raises(S3RequestError, match="deadline"):
        client.request("GET", "/b/k")
    assert time.monotonic() - started < 1.5


def test_bytes_past_an_answer_never_answer_the_next_request():
    """A HEAD answered with a body that is itself an answer: kept on the connection, it answered the next PUT (200)
    although the server refused that PUT (503), so a marker or a model counted as written."""
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    server = ScriptedServer([(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(ok) + ok, False),
                             (b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n", False)])
    client = _client(server)
    assert client.request("HEAD", "/b/x").status == 200
    assert client.request("PUT", "/b/frame.json", body=b"marker").status == 503  # on a fresh connection
    assert server.connections == 2


def test_a_declared_length_buys_neither_memory_nor_time(monkeypatch):
    """A 500 MB Content-Length trickled a byte at a time: the client allocated 500 MB at once and extended its
    answer deadline by the declared length (1,900 s here, up to 2.3 h); both now follow the bytes that arrive."""
    import resource

    import edge.store.s3_http as s3_http

    monkeypatch.setattr(s3_http, "ANSWER_DEADLINE_S", 0.5, raising=False)
    client = _trickling_store(declared_bytes=500_000_000, byte_every_s=0.1)
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    with pytest.raises(S3RequestError, match="deadline"):
        client.request("GET", "/b/k")
    assert time.monotonic() - started < 2.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_kib < 100 * 1024  # not the 477 MiB declared
