"""A small S3 HTTP client: SigV4-signed HTTP/1.1 requests over kept-alive sockets, one per thread.

Ingest makes two requests per frame. The minio SDK spent ~0.5 ms of CPU on each, ``http.client`` ~0.2 ms
(most of it parsing headers through the ``email`` package); writing the request in one send and reading
the answer from one buffer costs less (issue 14). TLS, regions and path-style addressing are what MinIO,
SeaweedFS and AWS S3 all accept.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import quote

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0  # an unreachable store fails fast, so ingest's retry loop and logs say so early
READ_TIMEOUT_S = 30.0  # the longest silence within an answer
# An answer must also end in time as a whole: a store that trickles a byte every few seconds never trips
# READ_TIMEOUT_S, and would hold an ingest thread forever. A body adds its length at the slowest rate allowed.
ANSWER_DEADLINE_S = 60.0
MIN_BODY_BYTES_PER_S = 256 * 1024
MAX_ERROR_BODY_BYTES = 64 * 1024  # an error body is only read to name the error; bound what we keep
MAX_HEAD_BYTES = 64 * 1024  # status line and headers of one answer
MAX_BODY_BYTES = 2 * 1024**3  # far above any object edgeloop stores (a teacher's weights are ~100 MB)
_RECV_BYTES = 64 * 1024  # under malloc's mmap threshold: a recv buffer is not mapped and unmapped each time
_BODY_RECV_BYTES = 1024 * 1024  # a body's reads: few calls for a large object
_ONE_SEND_MAX_BYTES = 1024 * 1024  # a body up to this is copied behind the head and sent in one call
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class S3RequestError(OSError):
    """No HTTP answer came (refused, reset, timed out, unreadable)."""


class _Closed(ConnectionError):
    """The server closed the connection before its answer began: a kept-alive socket it dropped while idle."""


@dataclass(frozen=True)
class S3Response:
    status: int
    body: bytes
    headers: dict[str, str]

    def error_code(self) -> str:
        """The ``<Code>`` of an S3 error body, or the HTTP status when the body has none (HEAD answers)."""
        start, end = self.body.find(b"<Code>"), self.body.find(b"</Code>")
        if start >= 0 and end > start:
            return self.body[start + 6:end].decode("utf-8", "replace")
        return f"HTTP {self.status}"


class _Connection:
    """One socket and the bytes received on it that are not consumed yet."""

    def __init__(self, sock: socket.socket):
        self.sock, self.buf = sock, bytearray()
        self.deadline = float("inf")  # time.monotonic() by which the answer being read must have ended

    def answer_within(self, seconds: float) -> None:
        """The answer being read, from now on, must end within ``seconds``."""
        self.deadline = time.monotonic() + seconds

    def allow_body(self, n: int) -> None:
        """``n`` more bytes of a body arrived: extend the deadline by their time at the slowest rate allowed."""
        self.deadline += n / MIN_BODY_BYTES_PER_S

    def _receive(self, receive, *args):
        """``receive(*args)`` waiting READ_TIMEOUT_S at most, and not past the answer's deadline."""
        left_s = self.deadline - time.monotonic()
        if left_s > 0:
            self.sock.settimeout(min(READ_TIMEOUT_S, left_s))
            try:
                return receive(*args)
            except TimeoutError:
                if time.monotonic() < self.deadline:
                    raise  # READ_TIMEOUT_S of silence
        raise TimeoutError("the answer did not end within its deadline: the server sends too slowly")

    def fill(self) -> None:
        data = self._receive(self.sock.recv, _RECV_BYTES)
        if not data:
            raise ConnectionError("the server closed the connection mid-answer")
        self.buf += data

    def read_until(self, mark: bytes, limit: int) -> bytes:
        """The bytes before ``mark`` (consumed with it); at most ``limit`` bytes are looked through."""
        while (at := self.buf.find(mark)) < 0:
            if len(self.buf) > limit:
                raise ValueError(f"no {mark!r} within {limit} bytes")
            self.fill()
        if at > limit:
            raise ValueError(f"no {mark!r} within {limit} bytes")
        line = bytes(self.buf[:at])
        del self.buf[:at + len(mark)]
        return line

    def read_exact(self, n: int) -> bytes:
        if len(self.buf) >= n:
            data = bytes(self.buf[:n])
            del self.buf[:n]
            return data
        # Grown as bytes arrive, and the deadline with them: a declared length alone allocated up to 2 GiB at once
        # and gave a server that trickles its body n / MIN_BODY_BYTES_PER_S more seconds (2.3 h).
        out = self.buf[:]
        self.buf.clear()
        while len(out) < n:
            data = self._receive(self.sock.recv, min(n - len(out), _BODY_RECV_BYTES))
            if not data:
                raise ConnectionError(f"the server closed the connection {n - len(out)} bytes before the body's end")
            self.allow_body(len(data))
            out += data
        return bytes(out)

    def read_to_close(self, limit: int, whole: bool) -> bytes:
        """The bytes until the server closes, cut at ``limit`` (or ValueError beyond it when ``whole``)."""
        while len(self.buf) <= limit:
            data = self._receive(self.sock.recv, _RECV_BYTES)
            if not data:
                break
            self.allow_body(len(data))
            self.buf += data
        if whole and len(self.buf) > limit:
            raise ValueError(f"body exceeds {limit} bytes")
        return bytes(self.buf[:limit])


class S3HttpClient:
    """Signs and sends one request at a time per thread to ``endpoint`` (host:port), path-style."""

    def __init__(self, endpoint: str, access_key: str, secret_key: str, region: str = "us-east-1",
                 secure: bool = False, tls_ca_file: str = ""):
        self.endpoint, self.region, self.secure = endpoint, region, secure
        host, _, port = endpoint.rpartition(":") if endpoint.rpartition(":")[2].isdigit() else (endpoint, "", "")
        self._address = (host.strip("[]"), int(port) if port else 443 if secure else 80)
        self._access_key, self._secret_key = access_key, secret_key
        # an unreadable or foreign CA file raises OSError (ssl.SSLError is one) here, before any request
        self._ssl = ssl.create_default_context(cafile=tls_ca_file or None) if secure else None
        self._local = threading.local()
        self._key_lock = threading.Lock()
        self._signing_day, self._signing_key = "", b""
        self._stamp = (0, "")  # (unix second, its x-amz-date), swapped whole so threads share it safely

    def request(self, method: str, path: str, query: dict[str, str] | None = None, body: bytes = b"",
                headers: dict[str, str] | None = None) -> S3Response:
        """Send ``method path?query`` with ``body``; any HTTP status is returned, no answer raises S3RequestError."""
        canonical_path = quote(path, safe="/-_.~")
        canonical_query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
                                   for k, v in sorted((query or {}).items()))
        target = canonical_path + ("?" + canonical_query if canonical_query else "")
        # the payload hash is signed, so a body changed on the way is refused by the server
        send = self._sign(method, canonical_path, canonical_query, dict(headers or {}),
                          hashlib.sha256(body).hexdigest() if body else _EMPTY_SHA256, len(body))
        if any("\r" in v or "\n" in v for v in send.values()):
            raise ValueError(f"a header of {method} {path} holds a line break")
        head = "".join([f"{method} {target} HTTP/1.1\r\n", *(f"{k}: {v}\r\n" for k, v in send.items()),
                        "\r\n"]).encode("latin-1")
        message = head + body if len(body) <= _ONE_SEND_MAX_BYTES else None
        for attempt in (1, 2):
            sent = False
            try:
                conn, reused = self._connection()
                conn.sock.settimeout(READ_TIMEOUT_S)  # the last answer's deadline may have shortened it
                if message is not None:
                    conn.sock.sendall(message)
                else:
                    conn.sock.sendall(head)
                    conn.sock.sendall(body)
                sent = True
                conn.answer_within(ANSWER_DEADLINE_S)
                status, answer_headers, data, keep = self._read_answer(conn, method)
                # an unread error tail or a server close; or bytes past the answer (a body on a HEAD, a doubled
                # answer), which the next request would take for its own: the next call opens a fresh connection
                if not keep or conn.buf:
                    self._drop()
                return S3Response(status, data, answer_headers)
            except (_Closed, BrokenPipeError, ConnectionResetError, ConnectionAbortedError) as exc:
                self._drop()
                # Sent again only when the socket was dead before any answer began (_Closed, or a send refused):
                # a reset once the answer is under way means the server took the request.
                if not reused or attempt == 2 or (sent and not isinstance(exc, _Closed)):
                    raise S3RequestError(f"{method} {path} to {self.endpoint}: {exc!r}") from exc
                log.debug("kept-alive connection to %s was closed (%r); reconnecting", self.endpoint, exc)
            except (OSError, ValueError) as exc:  # ValueError: an answer that is not HTTP
                self._drop()
                raise S3RequestError(f"{method} {path} to {self.endpoint}: {exc!r}") from exc
        raise AssertionError("unreachable")

    def _read_answer(self, conn: _Connection, method: str) -> tuple[int, dict[str, str], bytes, bool]:
        """Status, lower-cased headers, body and whether the connection may be reused."""
        if not conn.buf:
            try:
                conn.fill()
            except ConnectionError as exc:
                raise _Closed(str(exc)) from None
        while True:
            lines = conn.read_until(b"\r\n\r\n", MAX_HEAD_BYTES).decode("latin-1").split("\r\n")
            version, _, rest = lines[0].partition(" ")
            if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
                raise ValueError(f"not an HTTP answer: {lines[0][:80]!r}")
            status = int(rest[:3])
            if status >= 200:
                break  # 1xx answers (100 Continue) come before the real one
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        connection = headers.get("connection", "").lower()
        keep = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
        limit = MAX_ERROR_BODY_BYTES if status >= 300 else MAX_BODY_BYTES
        if method == "HEAD" or status in (204, 304):
            return status, headers, b"", keep
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body, complete = self._read_chunked(conn, limit, status < 300)
            return status, headers, body, keep and complete
        length = headers.get("content-length")
        if length is None:
            return status, headers, conn.read_to_close(limit, status < 300), False
        if not (length.isascii() and length.isdigit()):
            raise ValueError(f"bad Content-Length {length!r}")
        n = int(length)
        if n > limit:
            if status < 300:  # a body we need whole: a length this large is a broken answer, not data
                raise ValueError(f"Content-Length {n} exceeds {limit} bytes")
            return status, headers, conn.read_exact(limit), False
        return status, headers, conn.read_exact(n), keep

    @staticmethod
    def _read_chunked(conn: _Connection, limit: int, whole: bool) -> tuple[bytes, bool]:
        """A chunked body (up to ``limit`` bytes, or ValueError beyond it when ``whole``) and whether it was read
        to its end."""
        parts, size = [], 0
        while True:
            line = conn.read_until(b"\r\n", 1024).split(b";")[0].strip()
            if not line or line.strip(b"0123456789abcdefABCDEF"):  # int() would also take '-1', '0x10', '1_0'
                raise ValueError(f"bad chunk size {line[:40]!r}")
            n = int(line, 16)
            if n == 0:
                while conn.read_until(b"\r\n", MAX_HEAD_BYTES):  # trailers, then the empty line
                    pass
                return b"".join(parts), True
            if size + n > limit:
                if whole:
                    raise ValueError(f"chunked body exceeds {limit} bytes")
                parts.append(conn.read_exact(limit - size))
                return b"".join(parts), False
            parts.append(conn.read_exact(n))
            size += n
            if conn.read_until(b"\r\n", 2):
                raise ValueError("chunk longer than its size")

    def _connection(self) -> tuple[_Connection, bool]:
        """This thread's kept-alive connection, or a new one, and whether it was reused."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn, True
        sock = socket.create_connection(self._address, timeout=CONNECT_TIMEOUT_S)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._ssl is not None:
                sock = self._ssl.wrap_socket(sock, server_hostname=self._address[0])
            sock.settimeout(READ_TIMEOUT_S)
        except BaseException:
            sock.close()
            raise
        conn = self._local.conn = _Connection(sock)
        return conn, False

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.sock.close()

    def _sign(self, method: str, path: str, query: str, headers: dict[str, str], payload_sha256: str,
              length: int) -> dict[str, str]:
        """AWS Signature Version 4 headers for one request."""
        now_s = int(time.time())
        stamp = self._stamp  # formatting the date cost as much as the rest of the signature
        if stamp[0] != now_s:
            stamp = self._stamp = (now_s, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now_s)))
        amz_date = stamp[1]
        day = amz_date[:8]
        headers = {k.lower(): v.strip() for k, v in headers.items()}
        headers.update({"host": self.endpoint, "x-amz-date": amz_date, "x-amz-content-sha256": payload_sha256})
        if length or method in ("PUT", "POST"):
            headers["content-length"] = str(length)
        names = sorted(headers)
        signed_headers = ";".join(names)
        canonical = "\n".join([method, path, query, "".join(f"{n}:{headers[n]}\n" for n in names), signed_headers,
                               payload_sha256])
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(self._key_for(day), to_sign.encode(), hashlib.sha256).hexdigest()
        headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={self._access_key}/{scope}, "
                                    f"SignedHeaders={signed_headers}, Signature={signature}")
        return headers

    def _key_for(self, day: str) -> bytes:
        """The signing key changes once a day; derive it then, not on every request."""
        with self._key_lock:
            if day != self._signing_day:
                key = ("AWS4" + self._secret_key).encode()
                for part in (day, self.region, "s3", "aws4_request"):
                    key = hmac.new(key, part.encode(), hashlib.sha256).digest()
                self._signing_day, self._signing_key = day, key
            return self._signing_key
