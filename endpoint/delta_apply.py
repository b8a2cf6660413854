"""Rebuild a model file from its parent and a copy/insert delta (pure Python, no ``onnx``).

Layout: "ELD1" | parent sha256 (32 bytes) | target length u64 | op count u32 | insert length u64 |
zlib(op table ‖ insert bytes). An op is 17 bytes: kind u8 (0 copy, 1 insert), then two u64:
copy = (parent offset, length), insert = (offset in the insert bytes, length).
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


class DeltaError(ValueError):
    """The delta is malformed or was made for another parent."""


def pack_delta(parent_sha256: bytes, target_bytes: int, ops: list[tuple[int, int, int]], inserts: bytes) -> bytes:
    """Serialize ops and insert bytes (the encoder lives on the edge; the layout lives here)."""
    body = b"".join(OP.pack(*op) for op in ops) + inserts
    return HEADER.pack(DELTA_MAGIC, parent_sha256, target_bytes, len(ops), len(inserts)) + zlib.compress(body, 9)


def apply_delta(parent_bytes: bytes, delta_bytes: bytes, max_output_bytes: int = MAX_OUTPUT_BYTES) -> bytes:
    """The new file; the caller still checks its sha256 against the signed manifest."""
    if len(delta_bytes) < HEADER.size:
        raise DeltaError(f"delta of {len(delta_bytes)} bytes is shorter than its header")
    magic, parent_sha, target_len, op_count, insert_len = HEADER.unpack_from(delta_bytes)
    if magic != DELTA_MAGIC:
        raise DeltaError("not a delta: bad magic")
    if hashlib.sha256(parent_bytes).digest() != parent_sha:
        raise DeltaError("delta was made for another parent (sha256 differs)")
    if target_len > max_output_bytes or insert_len > target_len:
        raise DeltaError(f"delta claims {target_len} output bytes ({insert_len} inserted); limit {max_output_bytes}")
    body = _inflate(delta_bytes[HEADER.size:], op_count * OP.size + insert_len)
    inserts = memoryview(body)[op_count * OP.size:]
    parent = memoryview(parent_bytes)
    pieces, produced, insert_cursor = [], 0, 0
    for kind, start, length in OP.iter_unpack(body[: op_count * OP.size]):
        if kind == OP_COPY:
            if start + length > len(parent):
                raise DeltaError(f"copy [{start}, {start + length}) runs past the {len(parent)}-byte parent")
            pieces.append(parent[start : start + length])
        elif kind == OP_INSERT:
            if start != insert_cursor or start + length > insert_len:
                raise DeltaError(f"insert [{start}, {start + length}) is out of order or out of range")
            pieces.append(inserts[start : start + length])
            insert_cursor = start + length
        else:
            raise DeltaError(f"unknown op kind {kind}")
        produced += length
        if produced > target_len:
            raise DeltaError(f"ops produce more than the {target_len} bytes the header claims")
    if produced != target_len or insert_cursor != insert_len:
        raise DeltaError(f"ops produce {produced} of {target_len} bytes, use {insert_cursor} of {insert_len} inserted")
    return b"".join(pieces)


def _inflate(compressed: bytes, expected_len: int) -> bytes:
    # Bounded: a hostile delta must not inflate past what its header declared.
    inflater = zlib.decompressobj()
    try:
        body = inflater.decompress(compressed, expected_len + 1)
    except zlib.error as exc:
        raise DeltaError(f"delta body does not inflate: {exc}") from None
    if len(body) != expected_len or not inflater.eof or inflater.unused_data:
        raise DeltaError(f"delta body inflates to {len(body)} bytes, header says {expected_len}")
    return body
