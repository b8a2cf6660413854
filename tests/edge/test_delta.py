"""Copy/insert deltas between real ONNX students."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from edge.delta_encode import encode_delta, encode_delta_with_stats, tensor_spans
from endpoint.wire.delta import DeltaError, apply_delta

def _changed_tensor_bytes(a: Path, b: Path) -> int:
    import onnx

    before = {t.name: t.raw_data for t in onnx.load(str(a)).graph.initializer}
    return sum(len(t.raw_data) for t in onnx.load(str(b)).graph.initializer if before.get(t.name) != t.raw_data)


def test_delta_of_a_few_changed_tensors_is_small_and_rebuilds_the_file(push_models):
    parent, new = push_models.base.read_bytes(), push_models.few_changed.read_bytes()
    delta, stats = encode_delta_with_stats(parent, new)
    rebuilt = apply_delta(parent, delta, len(new))
    assert hashlib.sha256(rebuilt).digest() == hashlib.sha256(new).digest()
    print(f"\ndelta push: {len(delta)} bytes vs full {len(new)} bytes ({len(delta) / len(new):.1%}); "
          f"{stats.copy_ops} tensors copied")
    # The delta costs the changed tensors plus the zlib-squeezed graph, nothing more.
    assert len(delta) < _changed_tensor_bytes(push_models.base, push_models.few_changed) + 64 * 1024
    assert len(delta) < 0.5 * len(new)


def test_delta_when_every_tensor_changed_still_rebuilds_the_file(push_models):
    parent, new = push_models.base.read_bytes(), push_models.all_changed.read_bytes()
    delta, stats = encode_delta_with_stats(parent, new)
    assert apply_delta(parent, delta, len(new)) == new
    print(f"\nall tensors changed: delta {len(delta)} bytes vs full {len(new)} bytes")
    assert stats.copied_bytes < 0.05 * len(new)


def test_tensor_spans_point_at_the_raw_bytes(push_models):
    data = push_models.base.read_bytes()
    spans = tensor_spans(data)
    assert len(spans) > 50
    assert all(data[pos : pos + len(raw)] == raw for pos, raw in spans)


def test_delta_refuses_another_parent(push_models):
    delta = encode_delta(push_models.base.read_bytes(), push_models.few_changed.read_bytes())
    with pytest.raises(DeltaError, match="another parent"):
        apply_delta(push_models.all_changed.read_bytes(), delta, push_models.few_changed.stat().st_size)


def test_delta_against_an_identical_parent_is_tiny(push_models):
    data = push_models.base.read_bytes()
    delta = encode_delta(data, data)
    assert apply_delta(data, delta, len(data)) == data
    assert len(delta) < 0.1 * len(data)


PARENT = bytes(range(256)) * 4


def _header_then(delta: bytes, body_edit) -> bytes:
    import struct
    import zlib

    from endpoint.wire.delta import HEADER

    magic, sha, target, ops, ins = HEADER.unpack_from(delta)
    body = zlib.decompress(delta[HEADER.size:])
    fields, body = body_edit([magic, sha, target, ops, ins], body)
    return struct.pack(">4s32sQIQ", *fields) + zlib.compress(body)


def _good_delta() -> bytes:
    from endpoint.wire.delta import OP_COPY, OP_INSERT, pack_delta

    return pack_delta(hashlib.sha256(PARENT).digest(), 110, [(OP_COPY, 10, 100), (OP_INSERT, 0, 10)], b"0123456789")


def test_hand_made_delta_applies():
    assert apply_delta(PARENT, _good_delta(), 110) == PARENT[10:110] + b"0123456789"


@pytest.mark.parametrize("edit, reason", [
    (lambda f, b: (f, b[:9] + b"\x00" * 8 + b[17:]), "zero-length op"),  # copy length zeroed
    (lambda f, b: (f, b[:17] + b"\x00" * 8 + b[25:]), "use 0 of 10 inserted"),  # insert turned into a copy
    (lambda f, b: ([*f[:2], 10**12, *f[3:]], b), "manifest says 110"),  # claims a huge output
    (lambda f, b: ([*f[:3], 111, *f[4:]], b), "111 ops"),  # more ops than output bytes
    (lambda f, b: (f, b"\x07" + b[1:]), "unknown op"),
    (lambda f, b: (f, b[:1] + (10**6).to_bytes(8, "big") + b[9:]), "runs past"),  # copy past the parent
    (lambda f, b: (f, b[:-1]), "inflates to"),  # body shorter than declared
    (lambda f, b: (f, b + b"x"), "more bytes"),  # body longer than declared
])
def test_malformed_deltas_are_refused(edit, reason):
    with pytest.raises(DeltaError, match=reason):
        apply_delta(PARENT, _header_then(_good_delta(), edit), 110)


def test_a_delta_for_another_size_than_the_signed_one_is_refused():
    with pytest.raises(DeltaError, match="manifest says 111"):
        apply_delta(PARENT, _good_delta(), 111)
    short = _header_then(_good_delta(), lambda f, b: ([*f[:2], 111, *f[3:]], b))
    with pytest.raises(DeltaError, match="produce 110 of 111"):
        apply_delta(PARENT, short, 111)


@pytest.mark.parametrize("delta", [b"", b"ELD0" + b"\x00" * 60, _good_delta()[:60] + b"not zlib"])
def test_garbage_deltas_are_refused(delta):
    with pytest.raises(DeltaError):
        apply_delta(PARENT, delta, 110)
