"""Edge ingest: MQTT frame uploads → checked → object store (idempotent keys) → ack to the endpoint.

Messages are queued by paho's thread and stored by one worker thread, so a slow or
unreachable store never stalls the MQTT loop. A frame is acked only after its
``.json`` commit marker is written; anything unacked is re-sent by the endpoint.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable

from prometheus_client import CollectorRegistry, Counter, generate_latest

from edge.frame_checks import (REJECT_REASONS, FrameRejected, check_frame_message, check_jpeg,  # noqa: F401
                               peek_frame_id)
from edge.frame_index import FrameRecord
from edge.ingest_config import IngestConfig
from edge.mqtt_connection import MqttConnection
from edge.store import ObjectStore, StoreError, open_store
from endpoint import protocol
from endpoint.protocol import FEATURE_ACK, FEATURE_FRAME

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class IngestStats:
    """A snapshot of one ingest instance's counters."""

    received: int
    stored: int
    duplicates: int
    rejected: dict[str, int]
    bytes_stored: int
    acked_frames: int
    store_errors: int
    queue_depth: int
    connected: bool

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


@dataclass(frozen=True)
class _Incoming:
    topic: str
    payload: bytes
    received_time: float


class Ingest:
    """Subscribe to frame uploads, store them idempotently, ack them; ``start()`` / ``stop()``."""

    def __init__(self, config: IngestConfig, store: ObjectStore | None = None):
        self.config = config
        self.store = store if store is not None else open_store(config.store)
        self.registry = CollectorRegistry()  # one per instance, so tests can run many side by side
        reg = self.registry
        self._m_stored = Counter("edgeloop_ingest_frames_stored", "Frames written to the store", ["endpoint"],
                                 registry=reg)
        self._m_duplicate = Counter("edgeloop_ingest_frames_duplicate", "Redelivered frames already stored",
                                    registry=reg)
        self._m_rejected = Counter("edgeloop_ingest_frames_rejected", "Refused messages", ["reason"], registry=reg)
        self._m_bytes = Counter("edgeloop_ingest_bytes_stored", "JPEG bytes written to the store", registry=reg)
        self._m_store_errors = Counter("edgeloop_ingest_store_errors", "Failed store writes (retried)", registry=reg)
        self._counts = {"received": 0, "stored": 0, "duplicates": 0, "bytes_stored": 0, "acked_frames": 0,
                        "store_errors": 0}
        self._rejected: dict[str, int] = {}
        self._changed = threading.Condition()
        self._queue: queue.Queue[_Incoming] = queue.Queue(maxsize=config.queue_max_messages)
        self._stopping = threading.Event()
        self._worker: threading.Thread | None = None
        self._pending_acks: dict[str, list[str]] = {}
        self._oldest_pending_s = 0.0
        self.connection = MqttConnection(config.broker_host, config.broker_port, config.client_id,
                                         username=config.username, password=config.password,
                                         keepalive_s=config.keepalive_s)

    @property
    def topic_filter(self) -> str:
        if self.config.shared_group:
            return protocol.shared_subscription(self.config.shared_group, FEATURE_FRAME)
        return protocol.topic("+", FEATURE_FRAME)

    def start(self, timeout_s: float | None = 10.0) -> "Ingest":
        """Start the worker and subscribe; wait up to ``timeout_s`` for the subscription (None: don't wait)."""
        self._stopping.clear()
        self._worker = threading.Thread(target=self._work, name="ingest-store", daemon=True)
        self._worker.start()
        self.connection.subscribe(self.topic_filter, self._on_message, qos=1)
        if not self.connection.start(timeout_s) and timeout_s is not None:
            self.stop()
            raise TimeoutError(f"ingest not subscribed on {self.config.broker_host}:{self.config.broker_port} "
                               f"within {timeout_s} s")
        log.info("ingest %s listening on %s, storing to %s", self.connection.client_id, self.topic_filter,
                 self.store.describe())
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Finish the frame in hand, flush acks, disconnect; queued frames stay unacked (the endpoint re-sends)."""
        self._stopping.set()
        if self._worker is not None:
            self._worker.join(timeout_s)
            self._worker = None
        self.connection.stop()

    def stats(self) -> IngestStats:
        with self._changed:
            return IngestStats(**self._counts, rejected=dict(self._rejected), queue_depth=self._queue.qsize(),
                               connected=self.connection.connected.is_set())

    def wait_until(self, predicate: Callable[[IngestStats], bool], timeout_s: float) -> bool:
        """Block until ``predicate(stats())`` holds or ``timeout_s`` passes; return whether it holds."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not predicate(self.stats()):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def wait_for(self, n_stored: int, timeout_s: float) -> bool:
        """Block until at least ``n_stored`` frames were stored by this instance."""
        return self.wait_until(lambda s: s.stored >= n_stored, timeout_s)

    def metrics_text(self) -> bytes:
        """The Prometheus exposition of this instance's counters."""
        return generate_latest(self.registry)

    # --- paho's thread -------------------------------------------------------------------------

    def _on_message(self, topic: str, payload: bytes) -> None:
        self._count(received=1)
        try:
            self._queue.put_nowait(_Incoming(topic, payload, time.time()))
        except queue.Full:
            self._reject("queue_full", f"{self._queue.maxsize} frames wait for the store", topic)

    # --- the worker thread ---------------------------------------------------------------------

    def _work(self) -> None:
        while not self._stopping.is_set():
            try:
                item = self._queue.get(timeout=self.config.ack_flush_interval_s)
            except queue.Empty:
                self._flush_acks(due_only=True)
                continue
            try:
                self._handle(item)
            except Exception as exc:  # a bug in one message must not end ingest
                log.exception("ingest failed on a message from %s", item.topic)
                self._reject("internal_error", repr(exc), item.topic, warn=False)
            self._flush_acks(due_only=True)
        self._flush_acks(due_only=False)

    def _handle(self, item: _Incoming) -> None:
        try:
            frame = check_frame_message(item.topic, item.payload)
        except FrameRejected as exc:
            self._reject(exc.reason, exc.detail, item.topic)
            self._refuse(item, exc)
            return
        record = FrameRecord.from_header(frame.header, item.received_time)
        if self._store_with_retry(record, frame.jpeg):
            self._queue_ack(record.endpoint_id, record.frame_id)

    def _store_with_retry(self, record: FrameRecord, jpeg: bytes) -> bool:
        """Store until it works; False only when ingest stops first (the frame then stays unacked)."""
        delay_s = self.config.store_retry_initial_s
        while True:
            try:
                self._store(record, jpeg)
                return True
            except StoreError as exc:
                self._count(store_errors=1)
                self._m_store_errors.inc()
                log.warning("storing frame %s/%s failed, retry in %.2f s: %s", record.endpoint_id, record.frame_id,
                            delay_s, exc)
            self._flush_acks(due_only=True)  # frames stored before the outage still get their acks
            if self._stopping.wait(delay_s):
                return False
            delay_s = min(delay_s * 2, self.config.store_retry_max_s)

    def _store(self, record: FrameRecord, jpeg: bytes) -> None:
        if self.store.exists(record.meta_key):
            self._count(duplicates=1)
            self._m_duplicate.inc()
            log.debug("frame %s already stored; acking the redelivery", record.meta_key)
            return
        # The JPEG first, the .json last: a .json means the frame is complete.
        self.store.put(record.jpeg_key, jpeg, content_type="image/jpeg")
        self.store.put(record.meta_key, record.to_json_bytes(), content_type="application/json")
        self._m_stored.labels(endpoint=record.endpoint_id).inc()
        self._m_bytes.inc(len(jpeg))
        self._count(stored=1, bytes_stored=len(jpeg))

    def _queue_ack(self, endpoint_id: str, frame_id: str) -> None:
        if not self._pending_acks:
            self._oldest_pending_s = time.monotonic()
        ids = self._pending_acks.setdefault(endpoint_id, [])
        ids.append(frame_id)
        if len(ids) >= self.config.ack_batch_max_ids:
            self._publish_ack(endpoint_id, self._pending_acks.pop(endpoint_id))

    def _flush_acks(self, due_only: bool) -> None:
        if not self._pending_acks:
            return
        if due_only and time.monotonic() - self._oldest_pending_s < self.config.ack_flush_interval_s:
            return
        pending, self._pending_acks = self._pending_acks, {}
        for endpoint_id, frame_ids in pending.items():
            self._publish_ack(endpoint_id, frame_ids)

    def _publish_ack(self, endpoint_id: str, frame_ids: list[str]) -> None:
        ack = protocol.Ack(endpoint_id=endpoint_id, frame_ids=frame_ids)
        if self.connection.publish(protocol.topic(endpoint_id, FEATURE_ACK), protocol.encode(ack), qos=1):
            self._count(acked_frames=len(frame_ids))
        else:  # harmless: the endpoint re-sends, ingest sees a duplicate and acks again
            log.warning("ack of %d frames to %s not sent", len(frame_ids), endpoint_id)

    def _refuse(self, item: _Incoming, exc: FrameRejected) -> None:
        """Tell the endpoint a frame it sent can never be stored, so it stops re-sending it."""
        if exc.reason in ("bad_topic", "endpoint_mismatch", "queue_full", "internal_error"):
            return  # not this endpoint's fault, or worth another try
        frame_id = peek_frame_id(item.payload)
        if frame_id is None:
            return
        endpoint_id, _ = protocol.parse_topic(item.topic)
        nack = protocol.Ack(endpoint_id=endpoint_id, frame_ids=[frame_id], ok=False, reason=exc.reason)
        self.connection.publish(protocol.topic(endpoint_id, FEATURE_ACK), protocol.encode(nack), qos=1)

    # --- counters ------------------------------------------------------------------------------

    def _reject(self, reason: str, detail: str, topic: str, warn: bool = True) -> None:
        if warn:
            log.warning("rejected message on %s: %s (%s)", topic, reason, detail)
        self._m_rejected.labels(reason=reason).inc()
        with self._changed:
            self._rejected[reason] = self._rejected.get(reason, 0) + 1
            self._changed.notify_all()

    def _count(self, **increments: int) -> None:
        with self._changed:
            for name, n in increments.items():
                self._counts[name] += n
            self._changed.notify_all()


def run_ingest(config: IngestConfig, stop_event: threading.Event) -> IngestStats:
    """Run ingest until ``stop_event`` is set (the CLI's entry point); return the final counters."""
    store = _open_store_patiently(config, stop_event)
    if store is None:
        return IngestStats(0, 0, 0, {}, 0, 0, 0, 0, connected=False)
    ingest = Ingest(config, store).start(timeout_s=None)  # paho keeps connecting in the background
    server = None
    if config.metrics_port:
        from prometheus_client import start_http_server

        server, _ = start_http_server(config.metrics_port, registry=ingest.registry)
    try:
        while not stop_event.wait(config.stats_log_interval_s):
            log.info("ingest: %s", ingest.stats())
    finally:
        ingest.stop()
        if server is not None:
            server.shutdown()
    return ingest.stats()


def _open_store_patiently(config: IngestConfig, stop_event: threading.Event) -> ObjectStore | None:
    delay_s = config.store_retry_initial_s
    while True:
        try:
            return open_store(config.store)
        except StoreError as exc:
            log.warning("object store not reachable, retry in %.1f s: %s", delay_s, exc)
        if stop_event.wait(delay_s):
            return None
        delay_s = min(delay_s * 2, config.store_retry_max_s)
