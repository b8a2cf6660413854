"""Edge ingest: MQTT frame uploads → checked → object store (idempotent keys) → ack to the endpoint.

paho's thread only hands messages to a bounded inbox (waiting for room, so a slow store slows the
broker down instead of filling memory). A pool of store workers checks and writes frames
concurrently, so one frame's two store requests never hold up the next. A frame is acked only
after its ``.json`` commit marker is written; anything unacked is re-sent by the endpoint. Acks
of an endpoint are batched while more of its frames are in hand, and sent when none is.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

from prometheus_client import CollectorRegistry, Counter, generate_latest

from edge.frame_checks import (REJECT_REASONS, UNANSWERED_REASONS, FrameRejected,  # noqa: F401
                               check_frame_message, peek_frame_id, topic_endpoint_level)
from edge.frame_index import FrameRecord
from edge.ingest_acks import AckBatcher, refusal_payload
from edge.ingest_config import IngestConfig
from edge.ingest_inbox import Inbox, Incoming
from edge.ingest_writer import FrameWriter, Outcome
from edge.mqtt_connection import MqttConnection
from edge.store import ObjectStore, StoreError, open_store
from endpoint.wire import protocol
from endpoint.wire.protocol import FEATURE_FRAME

log = logging.getLogger(__name__)

_POLL_S = 0.2  # how often an idle worker looks at the stop flag


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
        for reason in REJECT_REASONS:  # every series exists from the start, at 0, for rate() and the dashboard
            self._m_rejected.labels(reason=reason)
        self._m_bytes = Counter("edgeloop_ingest_bytes_stored", "JPEG bytes written to the store", registry=reg)
        self._m_store_errors = Counter("edgeloop_ingest_store_errors", "Failed store writes (retried)", registry=reg)
        self._counts = {"received": 0, "stored": 0, "duplicates": 0, "bytes_stored": 0, "acked_frames": 0,
                        "store_errors": 0}
        self._rejected: dict[str, int] = {}
        self._changed = threading.Condition()
        self._inbox = Inbox(config.queue_max_messages, config.queue_max_bytes)
        self._in_hand: dict[str, int] = {}  # frames queued or being stored, per topic (one per endpoint)
        self._in_hand_lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self.connection = MqttConnection.from_config(config.broker)
        self._writer = FrameWriter(self.store, self._stopping, config.store_retry_initial_s,
                                   config.store_retry_max_s, self._store_failed)
        self._acks = AckBatcher(lambda topic, payload: self.connection.publish(topic, payload, qos=1),
                                config.ack_batch_max_ids, config.ack_flush_interval_s,
                                lambda n: self._count(acked_frames=n))

    @property
    def topic_filter(self) -> str:
        if self.config.shared_group:
            return protocol.shared_subscription(self.config.shared_group, FEATURE_FRAME)
        return protocol.topic("+", FEATURE_FRAME)

    def start(self, timeout_s: float | None = 10.0) -> "Ingest":
        """Start the store workers and subscribe; wait up to ``timeout_s`` for the subscription (None: don't wait)."""
        self._stopping.clear()
        self._inbox.open()
        with self._in_hand_lock:
            self._in_hand.clear()
        self._threads = [threading.Thread(target=self._work, name=f"ingest-store-{i}", daemon=True)
                         for i in range(self.config.store_concurrency)]
        self._threads.append(threading.Thread(target=self._flush_acks, name="ingest-acks", daemon=True))
        for thread in self._threads:
            thread.start()
        self.connection.subscribe(self.topic_filter, self._on_message, qos=1)
        if not self.connection.start(timeout_s) and timeout_s is not None:
            self.stop()
            raise TimeoutError(f"ingest not subscribed on {self.config.broker.host}:{self.config.broker.port} "
                               f"within {timeout_s} s")
        log.info("ingest %s listening on %s with %d store workers, storing to %s", self.connection.client_id,
                 self.topic_filter, self.config.store_concurrency, self.store.describe())
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Finish the frames in hand, flush acks, disconnect; queued frames stay unacked (the endpoint re-sends)."""
        self._stopping.set()
        self._inbox.close()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = []
        self._acks.flush(due_only=False)
        self.connection.stop()

    def stats(self) -> IngestStats:
        with self._changed:
            return IngestStats(**self._counts, rejected=dict(self._rejected), queue_depth=self._inbox.depth()[0],
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
        self._hold(topic)
        # Waiting here stops paho reading the socket, so the broker holds further messages: back-pressure.
        if not self._inbox.put(Incoming(topic, payload, time.time()), self.config.queue_wait_s):
            self._release(topic)
            if not self._stopping.is_set():  # at shutdown the frame just stays unacked
                self._reject("queue_full", f"{self.config.queue_max_messages} frames or "
                             f"{self.config.queue_max_bytes} bytes wait for the store", topic)

    # --- the store workers ---------------------------------------------------------------------

    def _work(self) -> None:
        while not self._stopping.is_set():
            item = self._inbox.get(_POLL_S)
            if item is None:
                continue
            try:
                self._handle(item)
            except Exception as exc:  # a bug in one message must not end ingest
                log.exception("ingest failed on a message from %s", item.topic)
                self._reject("internal_error", repr(exc), item.topic, warn=False)
            finally:
                if self._release(item.topic):
                    self._send_acks_of(item.topic)

    def _hold(self, topic: str) -> None:
        with self._in_hand_lock:
            self._in_hand[topic] = self._in_hand.get(topic, 0) + 1

    def _release(self, topic: str) -> bool:
        """One frame of ``topic`` is done with; True when it was the last one in hand."""
        with self._in_hand_lock:
            left = self._in_hand.get(topic, 1) - 1
            if left > 0:
                self._in_hand[topic] = left
            else:
                self._in_hand.pop(topic, None)
            return left <= 0

    def _send_acks_of(self, topic: str) -> None:
        try:
            endpoint_id = topic_endpoint_level(topic)
        except FrameRejected:  # no frame of a topic that is not ours was acked
            return
        self._acks.send_now(endpoint_id)

    def _flush_acks(self) -> None:
        while not self._stopping.wait(self.config.ack_flush_interval_s / 2):
            self._acks.flush(due_only=True)

    def _handle(self, item: Incoming) -> None:
        try:
            frame = check_frame_message(item.topic, item.payload)
        except FrameRejected as exc:
            self._reject(exc.reason, exc.detail, item.topic)
            self._refuse(item, exc.reason)
            return
        record = FrameRecord.from_header(frame.header, item.received_time)
        outcome = self._writer.write(record, frame.jpeg)
        if outcome is Outcome.STORED:
            self._m_stored.labels(endpoint=record.endpoint_id).inc()
            self._m_bytes.inc(len(frame.jpeg))
            self._count(stored=1, bytes_stored=len(frame.jpeg))
        elif outcome is Outcome.DUPLICATE:
            self._m_duplicate.inc()
            self._count(duplicates=1)
            log.debug("frame %s already stored; acking the redelivery", record.meta_key)
        elif outcome is Outcome.CONFLICT:
            self._reject("conflict", f"frame id {record.frame_id!r} is stored with other JPEG bytes", item.topic)
            self._refuse(item, "conflict")
            return
        if outcome is not Outcome.ABORTED:
            self._acks.add(record.endpoint_id, record.frame_id)

    def _refuse(self, item: Incoming, reason: str) -> None:
        """Tell the endpoint a frame it sent can never be stored, so it stops re-sending it."""
        if reason in UNANSWERED_REASONS:
            return
        frame_id = peek_frame_id(item.payload)
        if frame_id is None:  # nothing to name: the endpoint cannot tell which frame we mean
            return
        try:
            endpoint_level = topic_endpoint_level(item.topic)
            payload = refusal_payload(endpoint_level, frame_id, reason)
        except (FrameRejected, ValueError) as exc:  # already counted once as the frame's refusal
            log.warning("cannot answer the refusal on %s: %s", item.topic, exc)
            return
        self.connection.publish(protocol.topic(endpoint_level, protocol.FEATURE_ACK), payload, qos=1)

    def _store_failed(self) -> None:
        self._count(store_errors=1)
        self._m_store_errors.inc()

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
        except (StoreError, OSError) as exc:
            log.warning("object store not reachable, retry in %.1f s: %s", delay_s, exc)
        if stop_event.wait(delay_s):
            return None
        delay_s = min(delay_s * 2, config.store_retry_max_s)
