"""Rebuild a model file from its parent and a copy/insert delta (pure Python, no ``onnx``).

Layout: "ELD1" | parent sha256 (32 bytes) | target length u64 | op count u32 | insert length u64 |
zlib(op table ‖ insert bytes). An op is 17 bytes: kind u8 (0 copy, 1 insert), then two u64:
copy = (parent offset, length), insert = (offset in the insert bytes, length). Every op has length ≥ 1.
"""

from __future__ import annotations

import hashlib
import struct
import zlib

DELTA_MAGIC = b"ELD1"
HEADER = struct.Struct(">4s32sQIQ")
OP = struct.Struct(">BQQ")
OP_COPY, OP_INSERT = 0, 1
MAX_OUTPUT_BYTES = 512 * 1024 * 1024
OPS_PER_READ = 4096  # op table is inflated this many ops at a time, never whole
INFLATE_IN_BYTES = 64 * 1024  # compressed bytes fed to zlib per call
INFLATE_OUT_BYTES = 1024 * 1024  # the most one zlib call may produce


class DeltaError(ValueError):
    """The delta is malformed or was made for another parent."""


def pack_delta(parent_sha256: bytes, target_bytes: int, ops: list[tuple[int, int, int]], inserts: bytes) -> bytes:
    """Serialize ops and insert bytes (the encoder lives on the edge; the layout lives here)."""
    body = b"".join(OP.pack(*op) for op in ops) + inserts
    return HEADER.pack(DELTA_MAGIC, parent_sha256, target_bytes, len(ops), len(inserts)) + zlib.compress(body, 9)


def apply_delta(parent_bytes: bytes, delta_bytes: bytes, expected_size_bytes: int,
                max_output_bytes: int = MAX_OUTPUT_BYTES) -> bytes:
    """The new file of exactly ``expected_size_bytes`` (the signed size); the caller still checks its sha256.

    Memory stays near the output size whatever the delta claims: the header is checked before anything
    is inflated, and the body is inflated in bounded chunks straight into the output.
    """
    if len(delta_bytes) < HEADER.size:
        raise DeltaError(f"delta of {len(delta_bytes)} bytes is shorter than its header")
    magic, parent_sha, target_len, op_count, insert_len = HEADER.unpack_from(delta_bytes)
    if magic != DELTA_MAGIC:
        raise DeltaError("not a delta: bad magic")
    if target_len != expected_size_bytes:
        raise DeltaError(f"delta claims {target_len} output bytes, the manifest says {expected_size_bytes}")
    if target_len > max_output_bytes:
        raise DeltaError(f"delta claims {target_len} output bytes; limit {max_output_bytes}")
    if insert_len > target_len or op_count > target_len:
        # Every op produces at least one byte, so neither can exceed the output.
        raise DeltaError(f"delta claims {op_count} ops and {insert_len} inserted bytes for {target_len} output bytes")
    if hashlib.sha256(parent_bytes).digest() != parent_sha:
        raise DeltaError("delta was made for another parent (sha256 differs)")
    body = memoryview(delta_bytes)[HEADER.size:]
    ops, inserts = _Inflater(body), _Inflater(body)  # two cursors over one stream: the op table, the insert area
    inserts.skip(op_count * OP.size)
    out, parent = bytearray(target_len), memoryview(parent_bytes)
    produced = insert_cursor = 0
    for first in range(0, op_count, OPS_PER_READ):
        table = ops.read(min(OPS_PER_READ, op_count - first) * OP.size)
        for kind, start, length in OP.iter_unpack(table):
            if length == 0:
                raise DeltaError("zero-length op")
            if produced + length > target_len:
                raise DeltaError(f"ops produce more than the {target_len} bytes the header claims")
            if kind == OP_COPY:
                if start + length > len(parent):
                    raise DeltaError(f"copy [{start}, {start + length}) runs past the {len(parent)}-byte parent")
                out[produced : produced + length] = parent[start : start + length]
            elif kind == OP_INSERT:
                if start != insert_cursor or start + length > insert_len:
                    raise DeltaError(f"insert [{start}, {start + length}) is out of order or out of range")
                inserts.read_into(out, produced, length)
                insert_cursor = start + length
            else:
                raise DeltaError(f"unknown op kind {kind}")
            produced += length
    if produced != target_len or insert_cursor != insert_len:
        raise DeltaError(f"ops produce {produced} of {target_len} bytes, use {insert_cursor} of {insert_len} inserted")
    inserts.expect_end()
    return bytes(out)


class _Inflater:
    """Reads a zlib stream sequentially, a bounded chunk per call, so a hostile body never inflates whole."""

    def __init__(self, compressed: memoryview):
        self._src = compressed
        self._pos = 0
        self._z = zlib.decompressobj()

    def _more(self, want: int) -> bytes:
        """Up to ``want`` bytes of output; b"" once the compressed input is used up."""
        while True:
            data = self._z.unconsumed_tail
            if not data and self._pos < len(self._src):
                data = self._src[self._pos : self._pos + INFLATE_IN_BYTES]
                self._pos += len(data)
            try:
                out = self._z.decompress(data, want)
            except zlib.error as exc:
                raise DeltaError(f"delta body does not inflate: {exc}") from None
            if out or self._z.eof or not data:
                return out

    def read_into(self, out: bytearray, offset: int, length: int) -> None:
        end = offset + length
        while offset < end:
            chunk = self._more(min(end - offset, INFLATE_OUT_BYTES))
            if not chunk:
                raise DeltaError("delta body inflates to fewer bytes than its header declares")
            out[offset : offset + len(chunk)] = chunk
            offset += len(chunk)

    def read(self, length: int) -> bytearray:
        buf = bytearray(length)
        self.read_into(buf, 0, length)
        return buf

    def skip(self, length: int) -> None:
        while length:
            chunk = self._more(min(length, INFLATE_OUT_BYTES))
            if not chunk:
                raise DeltaError("delta body inflates to fewer bytes than its header declares")
            length -= len(chunk)

    def expect_end(self) -> None:
        if self._more(1) or not self._z.eof or self._z.unused_data or self._pos < len(self._src):
            raise DeltaError("delta body inflates to more bytes than its header declares, or is cut short")
