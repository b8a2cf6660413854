"""The delta format on hand-made deltas: each op rebuilds what it should, ELD1 still applies, bad deltas are refused."""

from __future__ import annotations

import hashlib
import struct
import zlib

import numpy as np
import pytest

from endpoint.wire.delta import (HEADER, MIN_PATCH_BYTES, OP, OP_ADD, OP_COPY, OP_INSERT, OP_SPARSE, OP_V1, DeltaError,
                                 add_patch, apply_delta, pack_delta, sparse_patch)

PARENT = bytes(range(256)) * 4
SHA = hashlib.sha256(PARENT).digest()
# Parent bytes 600..899 with three bytes moved, as a sparse fine-tune moves a few INT8 values.
CHANGED = bytearray(PARENT[600:900])
for at, step in ((0, 1), (137, 255), (299, 3)):
    CHANGED[at] = (CHANGED[at] + step) % 256
CHANGED = bytes(CHANGED)
SPARSE = sparse_patch(PARENT[600:900], CHANGED)
ADD = add_patch(PARENT[0:64], bytes(64))
TARGET = PARENT[10:110] + b"0123456789" + CHANGED + bytes(64)
OPS = [(OP_COPY, 10, 100, 0), (OP_INSERT, 0, 10, 10), (OP_SPARSE, 600, 300, len(SPARSE)), (OP_ADD, 0, 64, 64)]
DATA = b"0123456789" + SPARSE + ADD


def _good_delta() -> bytes:
    return pack_delta(SHA, len(TARGET), OPS, DATA)


def _packed(fields: list, ops: list[tuple], data: bytes, op_struct: struct.Struct = OP) -> bytes:
    return HEADER.pack(*fields) + zlib.compress(b"".join(op_struct.pack(*op) for op in ops) + data)


def _edited(ops: list[tuple] = OPS, data: bytes = DATA, **header) -> bytes:
    fields = dict(magic=b"ELD2", sha=SHA, target=len(TARGET), count=len(ops), data_len=len(data)) | header
    return _packed(list(fields.values()), ops, data)


def _with_op(i: int, op: tuple, data: bytes = DATA) -> bytes:
    return _edited([*OPS[:i], op, *OPS[i + 1:]], data)


def test_every_op_kind_rebuilds_its_bytes():
    assert SPARSE is not None and len(SPARSE) == 4 + 3 + 3  # count, one gap byte and one value per change
    assert apply_delta(PARENT, _good_delta(), len(TARGET)) == TARGET


def test_a_sparse_patch_with_long_gaps_rebuilds_the_span():
    old = np.random.default_rng(0).integers(0, 256, 70_000, dtype=np.uint8).tobytes()
    new = bytearray(old)
    for at in (0, 254, 255, 256, 1000, 66_000, 69_999):  # gaps of 0, 253, 0, 0, 743 and over 255 * 255
        new[at] ^= 0x5A
    patch = sparse_patch(old, bytes(new))
    delta = pack_delta(hashlib.sha256(old).digest(), len(new), [(OP_SPARSE, 0, len(new), len(patch))], patch)
    assert apply_delta(old, delta, len(new)) == new


def test_an_eld1_delta_still_applies():
    delta = _packed([b"ELD1", SHA, 110, 2, 10], [(OP_COPY, 10, 100), (OP_INSERT, 0, 10)], b"0123456789", OP_V1)
    assert apply_delta(PARENT, delta, 110) == PARENT[10:110] + b"0123456789"


def test_sparse_patch_declines_what_does_not_fit_in_the_span():
    assert sparse_patch(PARENT[:100], PARENT[:100]) is None  # nothing changed: a copy
    assert sparse_patch(PARENT[:100], bytes(100)) is None  # every byte changed: longer than the span


@pytest.mark.parametrize("delta, reason", [
    (_with_op(0, (OP_COPY, 10, 0, 0)), "zero-length op"),
    (_with_op(0, (7, 10, 100, 0)), "unknown op kind 7"),
    (_with_op(0, (OP_COPY, 10**6, 100, 0)), "runs past the 1024-byte parent"),
    (_with_op(2, (OP_SPARSE, 900, 300, len(SPARSE))), r"\[900, 1200\) runs past"),
    (_with_op(3, (OP_ADD, 2**63, 64, 64)), "runs past"),
    (_with_op(0, (OP_COPY, 10, 100, 5)), "declares 5 data bytes, not 0"),
    (_with_op(1, (OP_INSERT, 3, 10, 10)), "inserts take no parent bytes"),
    (_with_op(3, (OP_ADD, 0, 64, 63)), "declares 63 data bytes, not 64"),
    (_with_op(2, (OP_SPARSE, 600, 64, len(SPARSE) + 64)), "longer than its 64-byte span"),
    (_with_op(2, (OP_SPARSE, 600, 8, len(SPARSE))), f"patches span at least {MIN_PATCH_BYTES} bytes"),
    (_with_op(3, (OP_ADD, 0, 63, 63)), f"patches span at least {MIN_PATCH_BYTES} bytes"),
    (_with_op(2, (OP_SPARSE, 600, 300, 10**9)), "wants 1000000000 data bytes"),
    (_with_op(2, (OP_SPARSE, 600, 299, len(SPARSE))), "changes byte 299 of a 299-byte span"),
    (_edited(target=10**12), "manifest says"),  # claims a huge output
    (_edited(count=10**9), "1000000000 ops"),  # more ops than output bytes
    (_edited(data_len=10**6), "1000000 data bytes"),  # more data than output bytes
    (_edited(data_len=len(DATA) + 1), f"use {len(DATA)} of {len(DATA) + 1} data bytes"),
    (_edited(OPS[:3]), f"produce 410 of {len(TARGET)}"),
    (_edited(magic=b"ELD9"), "bad magic"),
    (_good_delta()[:-3], "inflates to|does not inflate"),  # truncated
    (_good_delta() + b"x", "more bytes"),
])
def test_malformed_deltas_are_refused(delta, reason):
    with pytest.raises(DeltaError, match=reason):
        apply_delta(PARENT, delta, len(TARGET))


def _sparse_delta(patch: bytes) -> bytes:
    return _edited([*OPS[:2], (OP_SPARSE, 600, 300, len(patch)), OPS[3]], b"0123456789" + patch + ADD)


@pytest.mark.parametrize("patch, reason", [
    (b"\x00\x00\x00", "no change count"),
    (struct.pack(">I", 0) + b"\x00\x01", "cannot hold 0 changes"),
    (struct.pack(">I", 200) + b"\x00\x01", "cannot hold 200 changes"),
    (struct.pack(">I", 2) + b"\x00\x01\x02\x01\x01", "more changes than its 2 values"),  # three gap ends
    (struct.pack(">I", 2) + b"\xff\x00\x01\x01", "names 1 changes for its 2 values"),
    (struct.pack(">I", 2) + b"\x00\xff\x01\x01", "ends inside a gap"),
    (struct.pack(">I", 1) + b"\xff\xff\x00\x01", "changes byte 510 of a 300-byte span"),
])
def test_malformed_sparse_patches_are_refused(patch, reason):
    with pytest.raises(DeltaError, match=reason):
        apply_delta(PARENT, _sparse_delta(patch), len(TARGET))


@pytest.mark.parametrize("kind", [OP_ADD, OP_SPARSE])
def test_an_eld1_delta_cannot_carry_patches(kind):
    delta = _packed([b"ELD1", SHA, 110, 2, 0], [(OP_COPY, 10, 100), (kind, 0, 10)], b"", OP_V1)
    with pytest.raises(DeltaError, match=f"unknown op kind {kind} in an ELD1 delta"):
        apply_delta(PARENT, delta, 110)


@pytest.mark.parametrize("delta", [b"", b"ELD0" + b"\x00" * 60, _good_delta()[:60] + b"not zlib"])
def test_garbage_deltas_are_refused(delta):
    with pytest.raises(DeltaError):
        apply_delta(PARENT, delta, len(TARGET))


def test_a_delta_for_another_size_than_the_signed_one_is_refused():
    with pytest.raises(DeltaError, match=f"manifest says {len(TARGET) + 1}"):
        apply_delta(PARENT, _good_delta(), len(TARGET) + 1)
