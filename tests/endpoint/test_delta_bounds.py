"""A hostile delta costs the endpoint about the signed model size in memory, never what the delta claims."""

from __future__ import annotations

import hashlib
import struct
import tracemalloc

from endpoint.wire.delta import HEADER, OP, OP_ADD, OP_COPY, OP_SPARSE, DeltaError, apply_delta, pack_delta

PARENT = bytes(4 * 1024 * 1024)  # a 4 MB parent; the signed new model is the same size
SIGNED_SIZE_BYTES = len(PARENT)
MAX_GROWTH_BYTES = 32 * 1024 * 1024


def _bomb(op: tuple[int, int, int, int], op_count: int, target_bytes: int = SIGNED_SIZE_BYTES,
          data: bytes = b"", data_bytes: int = 0) -> bytes:
    import zlib

    body = OP.pack(*op) * op_count + data
    return HEADER.pack(b"ELD2", hashlib.sha256(PARENT).digest(), target_bytes, op_count,
                       data_bytes or len(data)) + zlib.compress(body, 9)


def _peak_growth_bytes(fn) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def _refusal(delta: bytes, size_bytes: int) -> tuple[int, str]:
    """Peak memory growth while the delta is applied, and why it was refused."""
    reasons = []

    def run():
        try:
            apply_delta(PARENT, delta, size_bytes)
        except DeltaError as exc:
            reasons.append(str(exc))

    growth = _peak_growth_bytes(run)
    assert reasons, "the delta was not refused"
    return growth, reasons[0]


def test_a_25_kb_delta_of_a_million_zero_length_ops_is_refused_in_bounded_memory():
    delta = _bomb((OP_COPY, 0, 0, 0), 1_000_000)  # inflates to 25 MB of op table
    assert len(delta) < 30_000
    growth, reason = _refusal(delta, SIGNED_SIZE_BYTES)
    print(f"\nzero-length-op bomb: {len(delta)} bytes of delta, peak growth {growth / 1e6:.1f} MB")
    assert growth < MAX_GROWTH_BYTES
    assert reason == "zero-length op"


def test_more_ops_than_output_bytes_are_refused_before_inflating():
    delta = _bomb((OP_COPY, 0, 1, 0), 1_000_000, target_bytes=1000)
    growth, reason = _refusal(delta, 1000)
    assert growth < 1024 * 1024  # refused from the header: nothing was inflated
    assert "1000000 ops" in reason


def test_one_byte_ops_stream_through_in_bounded_memory():
    # Legal but hostile: one op per output byte. The op table (25x the output) is never held whole,
    # and no object is kept per op.
    delta = _bomb((OP_COPY, 0, 1, 0), 100_000, target_bytes=100_000)
    out = []
    growth = _peak_growth_bytes(lambda: out.append(apply_delta(PARENT, delta, 100_000)))
    print(f"\none-byte-op delta: {len(delta)} bytes, peak growth {growth / 1e6:.1f} MB")
    assert out == [bytes(100_000)]
    assert growth < 8 * 1024 * 1024


def _applied_growth(delta: bytes) -> tuple[int, bytes]:
    out = []
    growth = _peak_growth_bytes(lambda: out.append(apply_delta(PARENT, delta, SIGNED_SIZE_BYTES)))
    return growth, out[0]


def test_a_sparse_patch_changing_nearly_every_byte_streams_in_bounded_memory():
    # Legal but hostile: as many changes as fit in the span (a gap byte and a value each), 2 M positions in all.
    changes = (SIGNED_SIZE_BYTES - 4) // 2
    patch = struct.pack(">I", changes) + bytes(changes) + b"\x01" * changes
    delta = pack_delta(hashlib.sha256(PARENT).digest(), SIGNED_SIZE_BYTES,
                       [(OP_SPARSE, 0, SIGNED_SIZE_BYTES, len(patch))], patch)
    growth, out = _applied_growth(delta)
    print(f"\n{changes}-change sparse patch: {len(delta)} bytes of delta, peak growth {growth / 1e6:.1f} MB")
    assert out == b"\x01" * changes + bytes(SIGNED_SIZE_BYTES - changes)
    assert growth < 4 * SIGNED_SIZE_BYTES  # the output, its patch and the returned copy; no array per change


def test_an_add_patch_over_the_whole_file_streams_in_bounded_memory():
    delta = pack_delta(hashlib.sha256(PARENT).digest(), SIGNED_SIZE_BYTES, [(OP_ADD, 0, SIGNED_SIZE_BYTES,
                       SIGNED_SIZE_BYTES)], b"\x07" * SIGNED_SIZE_BYTES)
    growth, out = _applied_growth(delta)
    assert out == b"\x07" * SIGNED_SIZE_BYTES
    assert growth < 3 * SIGNED_SIZE_BYTES  # the output and the returned copy; the patch is read a chunk at a time


def test_a_patch_claiming_more_data_than_its_body_holds_is_refused_in_bounded_memory():
    delta = _bomb((OP_SPARSE, 0, SIGNED_SIZE_BYTES, SIGNED_SIZE_BYTES), 1, data=b"\x00" * 100,
                  data_bytes=SIGNED_SIZE_BYTES)
    growth, reason = _refusal(delta, SIGNED_SIZE_BYTES)
    assert growth < 3 * SIGNED_SIZE_BYTES
    assert "inflates to fewer bytes" in reason
