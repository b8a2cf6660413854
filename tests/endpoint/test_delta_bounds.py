"""A hostile delta costs the endpoint about the signed model size in memory, never what the delta claims."""

from __future__ import annotations

import hashlib
import tracemalloc

from endpoint.wire.delta import HEADER, OP, OP_COPY, DeltaError, apply_delta

PARENT = bytes(4 * 1024 * 1024)  # a 4 MB parent; the signed new model is the same size
SIGNED_SIZE_BYTES = len(PARENT)
MAX_GROWTH_BYTES = 32 * 1024 * 1024


def _bomb(op: tuple[int, int, int], op_count: int, target_bytes: int = SIGNED_SIZE_BYTES) -> bytes:
    import zlib

    body = OP.pack(*op) * op_count
    return HEADER.pack(b"ELD1", hashlib.sha256(PARENT).digest(), target_bytes, op_count, 0) + zlib.compress(body, 9)


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


def test_a_16_kb_delta_of_a_million_zero_length_ops_is_refused_in_bounded_memory():
    delta = _bomb((OP_COPY, 0, 0), 1_000_000)  # inflates to 17 MB of op table
    assert len(delta) < 20_000
    growth, reason = _refusal(delta, SIGNED_SIZE_BYTES)
    print(f"\nzero-length-op bomb: {len(delta)} bytes of delta, peak growth {growth / 1e6:.1f} MB")
    assert growth < MAX_GROWTH_BYTES
    assert reason == "zero-length op"


def test_more_ops_than_output_bytes_are_refused_before_inflating():
    delta = _bomb((OP_COPY, 0, 1), 1_000_000, target_bytes=1000)
    growth, reason = _refusal(delta, 1000)
    assert growth < 1024 * 1024  # refused from the header: nothing was inflated
    assert "1000000 ops" in reason


def test_one_byte_ops_stream_through_in_bounded_memory():
    # Legal but hostile: one op per output byte. The op table (17x the output) is never held whole,
    # and no object is kept per op.
    delta = _bomb((OP_COPY, 0, 1), 100_000, target_bytes=100_000)
    out = []
    growth = _peak_growth_bytes(lambda: out.append(apply_delta(PARENT, delta, 100_000)))
    print(f"\none-byte-op delta: {len(delta)} bytes, peak growth {growth / 1e6:.1f} MB")
    assert out == [bytes(100_000)]
    assert growth < 8 * 1024 * 1024
