"""Store one checked frame idempotently: the JPEG first, the ``.json`` marker last, retried until it lands.

Many workers call ``write`` at once. Two copies of one frame in flight are serialized on
its key, so the second sees the first's marker and is stored once. Across ingest processes the
marker is a conditional write too, and a JPEG of other bytes with no marker yet is another
ingest's write in flight: it is waited for, and stored over only once it has stayed without a
marker for a grace period after this write first saw it.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from typing import Callable

from pydantic import ValidationError

from edge.frame_index import FrameRecord
from edge.store import ObjectStore, StoreError

log = logging.getLogger(__name__)


# A JPEG with no marker and other bytes than ours is another ingest's write in flight until it has stood that way
# this long since we first saw it; one write takes milliseconds, and a store outage in between is retried with the
# same backoff as ours.
FOREIGN_WRITE_GRACE_S = 10.0
TORN = "torn"  # a marker that does not parse


class _ForeignWriteInFlight(Exception):
    """Another writer's JPEG for this frame id, not yet committed: retry, and it will have a marker."""


class Outcome(enum.Enum):
    """What became of one frame."""

    STORED = "stored"
    DUPLICATE = "duplicate"  # the same bytes were already committed: ack again, write nothing
    CONFLICT = "conflict"  # the id was committed with other bytes: refuse, keep the first
    ABORTED = "aborted"  # ingest stopped before the store took it: no ack, the endpoint re-sends


class FrameWriter:
    """Writes frames to ``store``; retries store failures with backoff until ``stopping`` is set."""

    def __init__(self, store: ObjectStore, stopping: threading.Event, retry_initial_s: float, retry_max_s: float,
                 on_store_error: Callable[[], None], foreign_write_grace_s: float = FOREIGN_WRITE_GRACE_S):
        self.store = store
        self._foreign_write_grace_s = foreign_write_grace_s
        self._stopping = stopping
        self._retry_initial_s, self._retry_max_s = retry_initial_s, retry_max_s
        self._on_store_error = on_store_error
        self._in_flight: dict[str, threading.Event] = {}
        self._waiting = 0
        self._lock = threading.Lock()

    def copies_waiting(self) -> int:
        """Writes that wait for another copy of the same frame to finish."""
        with self._lock:
            return self._waiting

    def write(self, record: FrameRecord, jpeg: bytes) -> Outcome:
        """Store the frame unless it is already committed; see Outcome."""
        key = record.meta_key
        while True:
            with self._lock:
                other = self._in_flight.get(key)
                if other is None:
                    mine = self._in_flight[key] = threading.Event()
                    break
                self._waiting += 1
            other.wait()  # the other copy always sets it when done, stored or not
            with self._lock:
                self._waiting -= 1
        try:
            return self._write_with_retry(record, jpeg)
        finally:
            with self._lock:
                del self._in_flight[key]
            mine.set()

    def _write_with_retry(self, record: FrameRecord, jpeg: bytes) -> Outcome:
        delay_s = self._retry_initial_s
        foreign_seen_s = None  # when this write first found another's JPEG with no marker: its grace starts then,
        while True:  # not when this write started (after an outage, that other write may be milliseconds old)
            now_s = time.monotonic()
            foreign_is_stale = foreign_seen_s is not None and now_s - foreign_seen_s >= self._foreign_write_grace_s
            try:
                return self._write_once(record, jpeg, foreign_is_stale)
            except _ForeignWriteInFlight:
                foreign_seen_s = now_s if foreign_seen_s is None else foreign_seen_s
                log.info("frame %s/%s: another ingest is storing other bytes under its id; waiting for its marker",
                         record.endpoint_id, record.frame_id)
            except (StoreError, OSError) as exc:  # OSError: a local disk that is full or read-only
                foreign_seen_s = None  # the other ingest's marker waited out the outage too: its grace starts again
                self._on_store_error()
                log.warning("storing frame %s/%s failed, retry in %.2f s: %s", record.endpoint_id, record.frame_id,
                            delay_s, exc)
            if self._stopping.wait(delay_s):
                return Outcome.ABORTED
            delay_s = min(delay_s * 2, self._retry_max_s)

    def _write_once(self, record: FrameRecord, jpeg: bytes, foreign_is_stale: bool) -> Outcome:
        # A conditional write of the JPEG both stores a new frame and tells a redelivery apart, in one request.
        if not self.store.put_if_absent(record.jpeg_key, jpeg, content_type="image/jpeg"):
            committed = self._committed(record)
            if isinstance(committed, Outcome):
                return committed
            # No marker that parses: a write cut short (a crash, or a power cut on a store without fsync), which
            # commits nothing, or, with no marker at all, maybe another ingest's write of the same id in flight.
            if self.store.get(record.jpeg_key) != jpeg:
                if committed is None and not foreign_is_stale:
                    raise _ForeignWriteInFlight()
                log.warning("frame %s has no committed marker; storing the frame again", record.meta_key)
                self.store.put(record.jpeg_key, jpeg, content_type="image/jpeg")
        # The .json last: a .json that parses means the frame is complete. Conditional, so that of two ingests
        # storing one id the first marker stands and the second learns what it committed.
        marker = record.to_json_bytes()
        if not self.store.put_if_absent(record.meta_key, marker, content_type="application/json"):
            committed = self._committed(record)
            if isinstance(committed, Outcome):
                return committed
            self.store.put(record.meta_key, marker, content_type="application/json")  # a marker cut short
        return Outcome.STORED

    def _committed(self, record: FrameRecord) -> Outcome | str | None:
        """DUPLICATE or CONFLICT when ``record``'s id has a marker that parses; TORN when its marker does not parse
        (only a crash leaves one: the store writes a whole object or none); None when it has no marker."""
        if not self.store.exists(record.meta_key):
            return None
        committed = self._read_marker(record.meta_key)
        if committed is None:
            return TORN
        return Outcome.DUPLICATE if committed.jpeg_sha256 == record.jpeg_sha256 else Outcome.CONFLICT

    def _read_marker(self, key: str) -> FrameRecord | None:
        raw = self.store.get(key)  # a StoreError here is retried like any other
        try:
            return FrameRecord.model_validate_json(raw)
        except (ValidationError, ValueError):
            return None
