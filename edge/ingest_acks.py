"""Frame acks, batched per endpoint (many store workers add, one flusher sends), and ok=false refusals.

An endpoint's acks also go out as soon as ingest holds none of its frames any more (``send_now``): waiting
longer batches nothing, it only holds the endpoint's upload window shut (issue 14: a 50 ms flush interval
was a third of a frame's round trip).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Callable

from endpoint.wire import protocol
from endpoint.wire.protocol import ENDPOINT_ID_PATTERN, FEATURE_ACK

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], bool]
_ENDPOINT_RE = re.compile(ENDPOINT_ID_PATTERN)


class AckBatcher:
    """Collects stored frame ids per endpoint; sends a batch when full or when ``flush`` finds it due."""

    def __init__(self, publish: Publish, batch_max_ids: int, flush_interval_s: float,
                 on_sent: Callable[[int], None]):
        self._publish, self._on_sent = publish, on_sent
        self.batch_max_ids, self.flush_interval_s = batch_max_ids, flush_interval_s
        self._pending: dict[str, list[str]] = {}
        self._oldest_s = 0.0
        self._lock = threading.Lock()

    def add(self, endpoint_id: str, frame_id: str) -> None:
        """Queue one stored frame's ack (call only after the store has it)."""
        with self._lock:
            if not self._pending:
                self._oldest_s = time.monotonic()
            ids = self._pending.setdefault(endpoint_id, [])
            ids.append(frame_id)
            full = self._pending.pop(endpoint_id) if len(ids) >= self.batch_max_ids else None
        if full:
            self._send(endpoint_id, full)

    def send_now(self, endpoint_id: str) -> None:
        """Send ``endpoint_id``'s pending acks at once (ingest holds no more of its frames)."""
        with self._lock:
            frame_ids = self._pending.pop(endpoint_id, None)
        if frame_ids:
            self._send(endpoint_id, frame_ids)

    def flush(self, due_only: bool) -> None:
        """Send pending acks; with ``due_only``, only once the oldest has waited ``flush_interval_s``."""
        with self._lock:
            if not self._pending or (due_only and time.monotonic() - self._oldest_s < self.flush_interval_s):
                return
            pending, self._pending = self._pending, {}
        for endpoint_id, frame_ids in pending.items():
            self._send(endpoint_id, frame_ids)

    def _send(self, endpoint_id: str, frame_ids: list[str]) -> None:
        ack = protocol.Ack(endpoint_id=endpoint_id, frame_ids=frame_ids)
        if self._publish(protocol.topic(endpoint_id, FEATURE_ACK), protocol.encode(ack)):
            self._on_sent(len(frame_ids))
        else:  # harmless: the endpoint re-sends, ingest sees a duplicate and acks again
            log.warning("ack of %d frames to %s not sent", len(frame_ids), endpoint_id)


def refusal_payload(topic_endpoint: str, frame_id: str, reason: str) -> bytes:
    """An ok=false ack naming ``frame_id``, for the endpoint level of the topic the frame came on.

    A level that breaks the endpoint id pattern is echoed as it came (the message is built unvalidated),
    so a client with a bad id still learns why and stops re-sending.
    """
    fields = dict(endpoint_id=topic_endpoint, frame_ids=[frame_id], ok=False, reason=reason)
    if _ENDPOINT_RE.fullmatch(topic_endpoint):
        return protocol.encode(protocol.Ack(**fields))
    return protocol.Ack.model_construct(**fields, v=protocol.PROTOCOL_VERSION, kind="ack", model_version="") \
        .model_dump_json().encode("utf-8")
