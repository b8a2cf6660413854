"""Delta between two ONNX files: unchanged bytes are copied from the parent, changed tensors patched or inserted.

Initializers are matched to the parent by name (equal byte length), the bytes between them by their place next
to the matched neighbour. A changed region goes out as whichever of a sparse patch, a dense add patch or an
insert compresses smallest.
"""

from __future__ import annotations

import hashlib
import logging
import zlib
from dataclasses import dataclass
from typing import NamedTuple

import onnx

from endpoint.wire.delta import (MIN_PATCH_BYTES, OP, OP_ADD, OP_COPY, OP_INSERT, OP_SPARSE, add_patch,
                                 apply_delta, pack_delta, sparse_patch)

log = logging.getLogger(__name__)

# Tiny tensors (scales, shapes) ride along with the bytes around them, which are copied or patched as a whole.
MIN_COPY_BYTES = 64
# Patches are priced by compressing each alone; this level is close to the body's and much faster than 9.
PRICE_LEVEL = 6


@dataclass(frozen=True)
class DeltaStats:
    """How a delta was made up, for reports."""

    target_bytes: int
    delta_bytes: int
    copied_bytes: int
    inserted_bytes: int
    copy_ops: int
    patched_bytes: int = 0  # output bytes rebuilt by patch ops (parent span plus changes)
    patch_data_bytes: int = 0  # what those patches carry before zlib
    patch_ops: int = 0


class TensorSpan(NamedTuple):
    """Where an initializer's raw bytes sit in a model file."""

    offset: int
    raw: bytes
    name: str


def tensor_spans(model_bytes: bytes, min_bytes: int = MIN_COPY_BYTES) -> list[TensorSpan]:
    """Each top-level initializer stored as raw_data, in file order."""
    model = onnx.load_model_from_string(model_bytes)
    spans, cursor = [], 0
    for tensor in model.graph.initializer:
        raw = tensor.raw_data
        if len(raw) < max(1, min_bytes):  # a zero-length op is refused by every endpoint
            continue
        # Protobuf writes initializers in order, so searching on from the last hit finds each one.
        pos = model_bytes.find(raw, cursor)
        if pos < 0:
            pos = model_bytes.find(raw)
        if pos < 0:
            continue
        spans.append(TensorSpan(pos, raw, tensor.name))
        cursor = max(cursor, pos + len(raw))
    return sorted(spans)


class _Ops:
    """The op list and data area being built; neighbouring copies and inserts merge into one op."""

    def __init__(self, parent: bytes, patches: bool):
        self.parent = parent
        self.patches = patches
        self.ops: list[list[int]] = []
        self.data = bytearray()
        self.copied = self.inserted = self.patched = self.patch_data = self.patch_ops = 0

    def region(self, new: bytes, parent_at: int | None) -> None:
        """Emit ``new``, priced against the parent bytes at ``parent_at`` (its counterpart) when it has one."""
        if not new:
            return
        old = None
        if parent_at is not None and 0 <= parent_at and parent_at + len(new) <= len(self.parent):
            old = self.parent[parent_at : parent_at + len(new)]
        if old == new:
            return self._emit(OP_COPY, parent_at, len(new), b"")
        if old is None or not self.patches or len(new) < MIN_PATCH_BYTES:
            return self._emit(OP_INSERT, 0, len(new), new)
        choices = [(OP_INSERT, new), (OP_ADD, add_patch(old, new)), (OP_SPARSE, sparse_patch(old, new))]
        kind, data = min(((k, d) for k, d in choices if d is not None),
                         key=lambda choice: len(zlib.compress(choice[1], PRICE_LEVEL)))
        self._emit(kind, 0 if kind == OP_INSERT else parent_at, len(new), data)

    def copy(self, parent_at: int, length: int) -> None:
        self._emit(OP_COPY, parent_at, length, b"")

    def _emit(self, kind: int, start: int, length: int, data: bytes) -> None:
        last = self.ops[-1] if self.ops else None
        if last and kind == last[0] == OP_COPY and last[1] + last[2] == start:
            last[2] += length
        elif last and kind == last[0] == OP_INSERT:
            last[2] += length
            last[3] += length
        else:
            self.ops.append([kind, start, length, len(data)])
        self.data.extend(data)
        if kind == OP_COPY:
            self.copied += length
        elif kind == OP_INSERT:
            self.inserted += length
        else:
            self.patched, self.patch_data, self.patch_ops = (self.patched + length, self.patch_data + len(data),
                                                             self.patch_ops + 1)


def encode_delta_with_stats(parent_bytes: bytes, new_bytes: bytes, min_copy_bytes: int = MIN_COPY_BYTES,
                            patches: bool = True) -> tuple[bytes, DeltaStats]:
    """The delta that rebuilds ``new_bytes`` from ``parent_bytes``, and what it is made of.

    ``patches=False`` sends every changed region whole, as deltas did before patches existed (for comparisons)."""
    parent_spans = tensor_spans(parent_bytes, min_copy_bytes)
    by_name = {span.name: span for span in parent_spans}
    by_raw: dict[bytes, int] = {}
    for span in parent_spans:
        by_raw.setdefault(span.raw, span.offset)
    ops = _Ops(parent_bytes, patches)
    cursor, parent_cursor = 0, 0  # parent_cursor: where the parent's counterpart of new_bytes[cursor:] starts
    for span in tensor_spans(new_bytes, min_copy_bytes):
        if span.offset < cursor:
            continue  # an overlapping hit: its bytes go out with the region around it
        twin = by_name.get(span.name)
        twin_at = twin.offset if twin is not None and len(twin.raw) == len(span.raw) else None
        same_at = twin_at if twin is not None and twin.raw == span.raw else by_raw.get(span.raw)
        anchor = same_at if same_at is not None else twin_at
        # The bytes before this tensor: their counterpart follows the previous match, or else precedes this one.
        gap = new_bytes[cursor : span.offset]
        if parent_cursor is None and anchor is not None:
            parent_cursor = anchor - len(gap)
        ops.region(gap, parent_cursor)
        if same_at is not None:
            ops.copy(same_at, len(span.raw))
        else:
            ops.region(span.raw, twin_at)
        cursor = span.offset + len(span.raw)
        parent_cursor = None if anchor is None else anchor + len(span.raw)
    ops.region(new_bytes[cursor:], parent_cursor)
    delta = pack_delta(hashlib.sha256(parent_bytes).digest(), len(new_bytes), [tuple(op) for op in ops.ops],
                       bytes(ops.data))
    # Cheap next to training, and a bad delta would be refused by every endpoint.
    if apply_delta(parent_bytes, delta, len(new_bytes)) != new_bytes:
        raise AssertionError("delta does not rebuild the new model")
    stats = DeltaStats(len(new_bytes), len(delta), ops.copied, ops.inserted,
                       sum(1 for op in ops.ops if op[0] == OP_COPY), ops.patched, ops.patch_data, ops.patch_ops)
    log.info("delta %d bytes for a %d-byte model (%d copied in %d ops, %d patched by %d ops carrying %d, "
             "%d inserted; op table %d bytes raw)", stats.delta_bytes, stats.target_bytes, stats.copied_bytes,
             stats.copy_ops, stats.patched_bytes, stats.patch_ops, stats.patch_data_bytes, stats.inserted_bytes,
             len(ops.ops) * OP.size)
    return delta, stats


def encode_delta(parent_bytes: bytes, new_bytes: bytes, min_copy_bytes: int = MIN_COPY_BYTES) -> bytes:
    """The delta that rebuilds ``new_bytes`` from ``parent_bytes``."""
    return encode_delta_with_stats(parent_bytes, new_bytes, min_copy_bytes)[0]
