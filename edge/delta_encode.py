"""Delta between two ONNX files: unchanged initializer tensors become copies from the parent."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import onnx

from endpoint.wire.delta import OP_COPY, OP_INSERT, apply_delta, pack_delta

log = logging.getLogger(__name__)

# Tiny tensors (scales, shapes) cost more as copy ops than as inserted bytes that zlib squeezes.
MIN_COPY_BYTES = 64


@dataclass(frozen=True)
class DeltaStats:
    """How a delta was made up, for reports."""

    target_bytes: int
    delta_bytes: int
    copied_bytes: int
    inserted_bytes: int
    copy_ops: int


def tensor_spans(model_bytes: bytes, min_bytes: int = MIN_COPY_BYTES) -> list[tuple[int, bytes]]:
    """(offset in the file, raw bytes) of each top-level initializer stored as raw_data."""
    model = onnx.load_model_from_string(model_bytes)
    spans, cursor = [], 0
    for tensor in model.graph.initializer:
        raw = tensor.raw_data
        if len(raw) < max(1, min_bytes):  # a zero-length copy is refused by every endpoint
            continue
        # Protobuf writes initializers in order, so searching on from the last hit finds each one.
        pos = model_bytes.find(raw, cursor)
        if pos < 0:
            pos = model_bytes.find(raw)
        if pos < 0:
            continue
        spans.append((pos, raw))
        cursor = max(cursor, pos + len(raw))
    return spans


def encode_delta_with_stats(parent_bytes: bytes, new_bytes: bytes,
                            min_copy_bytes: int = MIN_COPY_BYTES) -> tuple[bytes, DeltaStats]:
    """The delta that rebuilds ``new_bytes`` from ``parent_bytes``, and what it is made of."""
    parent_offsets: dict[bytes, int] = {}
    for pos, raw in tensor_spans(parent_bytes, min_copy_bytes):
        parent_offsets.setdefault(raw, pos)
    ops: list[tuple[int, int, int]] = []
    inserts = bytearray()
    cursor = copied = 0

    def insert(end: int) -> None:
        if end > cursor:
            ops.append((OP_INSERT, len(inserts), end - cursor))
            inserts.extend(new_bytes[cursor:end])

    for pos, raw in sorted(tensor_spans(new_bytes, min_copy_bytes)):
        parent_pos = parent_offsets.get(raw)
        if parent_pos is None or pos < cursor:
            continue  # changed tensor (or overlapping hit): its bytes go out with the next insert
        insert(pos)
        ops.append((OP_COPY, parent_pos, len(raw)))
        cursor = pos + len(raw)
        copied += len(raw)
    insert(len(new_bytes))
    delta = pack_delta(hashlib.sha256(parent_bytes).digest(), len(new_bytes), ops, bytes(inserts))
    # Cheap next to training, and a bad delta would be refused by every endpoint.
    if apply_delta(parent_bytes, delta, len(new_bytes)) != new_bytes:
        raise AssertionError("delta does not rebuild the new model")
    stats = DeltaStats(len(new_bytes), len(delta), copied, len(inserts),
                       sum(1 for op in ops if op[0] == OP_COPY))
    log.info("delta %d bytes for a %d-byte model (%d copied in %d tensors, %d inserted)",
             stats.delta_bytes, stats.target_bytes, copied, stats.copy_ops, stats.inserted_bytes)
    return delta, stats


def encode_delta(parent_bytes: bytes, new_bytes: bytes, min_copy_bytes: int = MIN_COPY_BYTES) -> bytes:
    """The delta that rebuilds ``new_bytes`` from ``parent_bytes``."""
    return encode_delta_with_stats(parent_bytes, new_bytes, min_copy_bytes)[0]
