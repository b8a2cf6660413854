"""Rebuild a model file from its parent and a delta (pure Python and numpy, no ``onnx``).

Layout: magic | parent sha256 (32 bytes) | target length u64 | op count u32 | data length u64 |
zlib(op table ‖ data area). Ops run in order, each producing ``length`` ≥ 1 output bytes and taking its data
bytes from the data area in turn. "ELD2" op, 25 bytes: kind u8, parent offset u64, length u64, data bytes u64:

* copy (0): ``parent[offset : offset + length]``; no data, offset of an insert is 0.
* insert (1): the next ``length`` data bytes.
* add (2): the parent span plus the next ``length`` data bytes, bytewise mod 256 (zero where unchanged).
* sparse (3): the parent span with a few bytes changed; data = change count u32 | gaps | one value per change,
  added mod 256 to its byte. A gap (unchanged bytes before a change) is written as g // 255 bytes of 255, then
  g % 255. A sparse patch is never longer than its span.

Patch ops span at least ``MIN_PATCH_BYTES``: a shorter changed region costs less as an insert, and each patch op
costs the endpoint tens of microseconds, which a delta of tiny patches would multiply.

"ELD1" (still read): 17-byte ops, kind u8 (0 copy, 1 insert) and two u64: copy = (parent offset, length),
insert = (offset in the data area, length).
"""

from __future__ import annotations

import hashlib
import struct
import zlib

import numpy as np

DELTA_MAGIC, DELTA_MAGIC_V1 = b"ELD2", b"ELD1"
HEADER = struct.Struct(">4s32sQIQ")
OP = struct.Struct(">BQQQ")
OP_V1 = struct.Struct(">BQQ")
OP_COPY, OP_INSERT, OP_ADD, OP_SPARSE = 0, 1, 2, 3
SPARSE_COUNT = struct.Struct(">I")
GAP_ESCAPE = 255
MIN_PATCH_BYTES = 64
MAX_OUTPUT_BYTES = 512 * 1024 * 1024
OPS_PER_READ = 4096  # op table is inflated this many ops at a time, never whole
INFLATE_IN_BYTES = 64 * 1024  # compressed bytes fed to zlib per call
INFLATE_OUT_BYTES = 1024 * 1024  # the most one zlib call may produce
GAPS_PER_STEP = 64 * 1024  # gap bytes turned into positions at once (8 bytes of int64 each)


class DeltaError(ValueError):
    """The delta is malformed or was made for another parent."""


def pack_delta(parent_sha256: bytes, target_bytes: int, ops: list[tuple[int, int, int, int]], data: bytes) -> bytes:
    """Serialize ELD2 ops (kind, parent offset, length, data bytes) and their data (the encoder lives on the edge)."""
    body = b"".join(OP.pack(*op) for op in ops) + data
    return HEADER.pack(DELTA_MAGIC, parent_sha256, target_bytes, len(ops), len(data)) + zlib.compress(body, 9)


def add_patch(old: bytes, new: bytes) -> bytes:
    """The data of an add op rebuilding ``new`` from ``old`` (same length)."""
    return (np.frombuffer(new, np.uint8) - np.frombuffer(old, np.uint8)).tobytes()


def sparse_patch(old: bytes, new: bytes) -> bytes | None:
    """The data of a sparse op rebuilding ``new`` from ``old`` (same length); None where none fits in the span."""
    before, after = np.frombuffer(old, np.uint8), np.frombuffer(new, np.uint8)
    positions = np.flatnonzero(before != after)
    gaps = np.diff(positions, prepend=-1) - 1
    escapes = gaps // GAP_ESCAPE
    gap_bytes = np.full(int(escapes.sum()) + positions.size, GAP_ESCAPE, np.uint8)
    gap_bytes[np.cumsum(escapes + 1) - 1] = gaps % GAP_ESCAPE
    size = SPARSE_COUNT.size + gap_bytes.size + positions.size
    if not positions.size or size > len(new):
        return None
    return SPARSE_COUNT.pack(positions.size) + gap_bytes.tobytes() + (after[positions] - before[positions]).tobytes()


def apply_delta(parent_bytes: bytes, delta_bytes: bytes, expected_size_bytes: int,
                max_output_bytes: int = MAX_OUTPUT_BYTES) -> bytes:
    """The new file of exactly ``expected_size_bytes`` (the signed size); the caller still checks its sha256.

    Memory stays near the output size whatever the delta claims: the header and each op are checked before
    anything is inflated or allocated, and the body is inflated in bounded chunks.
    """
    if len(delta_bytes) < HEADER.size:
        raise DeltaError(f"delta of {len(delta_bytes)} bytes is shorter than its header")
    magic, parent_sha, target_len, op_count, data_len = HEADER.unpack_from(delta_bytes)
    op_struct = {DELTA_MAGIC: OP, DELTA_MAGIC_V1: OP_V1}.get(magic)
    if op_struct is None:
        raise DeltaError("not a delta: bad magic")
    if target_len != expected_size_bytes:
        raise DeltaError(f"delta claims {target_len} output bytes, the manifest says {expected_size_bytes}")
    if target_len > max_output_bytes:
        raise DeltaError(f"delta claims {target_len} output bytes; limit {max_output_bytes}")
    if data_len > target_len or op_count > target_len:
        # Every op produces at least one byte and uses at most that many data bytes.
        raise DeltaError(f"delta claims {op_count} ops and {data_len} data bytes for {target_len} output bytes")
    if hashlib.sha256(parent_bytes).digest() != parent_sha:
        raise DeltaError("delta was made for another parent (sha256 differs)")
    body = memoryview(delta_bytes)[HEADER.size:]
    table, data = _Inflater(body), _Inflater(body)  # two cursors over one stream: the op table, the data area
    data.skip(op_count * op_struct.size)
    out = _Output(parent_bytes, target_len)
    buffer, parent, parent_len = out.buffer, memoryview(parent_bytes), len(parent_bytes)
    produced = used = 0
    for first in range(0, op_count, OPS_PER_READ):
        for op in op_struct.iter_unpack(table.read(min(OPS_PER_READ, op_count - first) * op_struct.size)):
            kind, start, length, data_bytes = _v1_as_v2(op, used) if op_struct is OP_V1 else op
            # Every op is checked before it reads or writes anything; copies, the most common, inline.
            if length == 0:
                raise DeltaError("zero-length op")
            if produced + length > target_len:
                raise DeltaError(f"ops produce more than the {target_len} bytes the header claims")
            if data_bytes > data_len - used:
                raise DeltaError(f"op wants {data_bytes} data bytes; {data_len - used} are left of the declared "
                                 "data area")
            if kind == OP_COPY:
                if data_bytes or start + length > parent_len:
                    _check_data(kind, length, data_bytes, 0)
                    _check_span(start, length, parent_len)
                buffer[produced : produced + length] = parent[start : start + length]
            elif kind == OP_INSERT:
                _check_data(kind, length, data_bytes, length)
                if start != 0:
                    raise DeltaError(f"insert names parent offset {start}; inserts take no parent bytes")
                data.read_into(buffer, produced, length)
            elif kind in (OP_ADD, OP_SPARSE):
                out.patch(kind, produced, start, length, data_bytes, data)
            else:
                raise DeltaError(f"unknown op kind {kind}")
            produced += length
            used += data_bytes
    if produced != target_len or used != data_len:
        raise DeltaError(f"ops produce {produced} of {target_len} bytes, use {used} of {data_len} data bytes")
    data.expect_end()
    return bytes(buffer)


def _v1_as_v2(op: tuple[int, int, int], used: int) -> tuple[int, int, int, int]:
    kind, start, length = op
    if kind == OP_INSERT:
        if start != used:
            raise DeltaError(f"insert [{start}, {start + length}) is out of order")
        return OP_INSERT, 0, length, length
    if kind == OP_COPY:
        return OP_COPY, start, length, 0
    raise DeltaError(f"unknown op kind {kind} in an ELD1 delta")


def _check_data(kind: int, length: int, data_bytes: int, wanted: int) -> None:
    if data_bytes != wanted:
        raise DeltaError(f"op kind {kind} of length {length} declares {data_bytes} data bytes, not {wanted}")


def _check_span(start: int, length: int, parent_len: int) -> None:
    if start + length > parent_len:
        raise DeltaError(f"parent span [{start}, {start + length}) runs past the {parent_len}-byte parent")


class _Output:
    """The file being rebuilt, and the patch ops that write it through numpy views."""

    def __init__(self, parent_bytes: bytes, target_len: int):
        self.buffer = bytearray(target_len)
        self.parent = np.frombuffer(parent_bytes, np.uint8)
        self.view = np.frombuffer(self.buffer, np.uint8)

    def patch(self, kind: int, produced: int, start: int, length: int, data_bytes: int, data: _Inflater) -> None:
        """Check a patch op, then write its span at ``produced``."""
        if length < MIN_PATCH_BYTES:
            raise DeltaError(f"patch of a {length}-byte span; patches span at least {MIN_PATCH_BYTES} bytes")
        if kind == OP_ADD:
            _check_data(kind, length, data_bytes, length)
        elif data_bytes > length:
            raise DeltaError(f"sparse patch of {data_bytes} bytes is longer than its {length}-byte span")
        _check_span(start, length, len(self.parent))
        if kind == OP_ADD:
            self.add(produced, start, length, data)
        else:
            self.sparse(produced, start, length, data.read(data_bytes))

    def add(self, produced: int, start: int, length: int, data: _Inflater) -> None:
        for done in range(0, length, INFLATE_OUT_BYTES):  # bounded: the patch is never held whole
            step = min(INFLATE_OUT_BYTES, length - done)
            patch = np.frombuffer(data.read(step), np.uint8)
            at, src = produced + done, start + done
            np.add(self.parent[src : src + step], patch, out=self.view[at : at + step])

    def sparse(self, produced: int, start: int, length: int, patch: bytearray) -> None:
        if len(patch) < SPARSE_COUNT.size:
            raise DeltaError(f"sparse patch of {len(patch)} bytes has no change count")
        (count,) = SPARSE_COUNT.unpack_from(patch)
        gap_len = len(patch) - SPARSE_COUNT.size - count
        if count == 0 or gap_len < count:  # each change takes at least one gap byte and one value
            raise DeltaError(f"sparse patch of {len(patch)} bytes cannot hold {count} changes")
        gaps = np.frombuffer(patch, np.uint8, gap_len, SPARSE_COUNT.size)
        if gaps[-1] == GAP_ESCAPE:
            raise DeltaError("sparse patch ends inside a gap")
        values = np.frombuffer(patch, np.uint8, count, SPARSE_COUNT.size + gap_len)
        span = self.view[produced : produced + length]
        span[:] = self.parent[start : start + length]
        next_position = done = 0
        for first in range(0, gap_len, GAPS_PER_STEP):
            step = gaps[first : first + GAPS_PER_STEP]
            ends = step != GAP_ESCAPE
            # A change sits one past the sum of the gap bytes before it and the changes before it.
            positions = np.cumsum(step.astype(np.int64) + ends) + (next_position - 1)
            next_position = int(positions[-1]) + 1
            positions = positions[ends]
            if positions.size and positions[-1] >= length:
                raise DeltaError(f"sparse patch changes byte {int(positions[-1])} of a {length}-byte span")
            if done + positions.size > count:
                raise DeltaError(f"sparse patch names more changes than its {count} values")
            span[positions] += values[done : done + positions.size]
            done += positions.size
        if done != count:
            raise DeltaError(f"sparse patch names {done} changes for its {count} values")


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
