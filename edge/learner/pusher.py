"""Pushes a registry version to one endpoint as a delta against what the endpoint reports running, and waits for its ack."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

from edge.learner.fleet import FleetView
from edge.publisher import ModelPublisher
from edge.registry import VERSION_RE, ModelRegistry
from edge.store import StoreError
from endpoint.wire.protocol import PayloadTooLarge

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PushOutcome:
    kind: str  # "full", "delta", or "skip" when the endpoint already runs it
    bytes: int
    acked: bool
    reason: str = ""


class Pusher:
    """One push at a time per learner: a round's pushes and reconnect catch-ups never interleave."""

    def __init__(self, mqtt, registry: ModelRegistry, fleet: FleetView, student_name: str):
        self.registry, self.fleet, self.student_name = registry, fleet, student_name
        self.publisher = ModelPublisher(mqtt)
        # Re-entrant: a caller holds it across its decision and the push (the round driver sets the target,
        # the reconciler compares running and target), so neither acts on what the other is changing.
        self.lock = threading.RLock()

    def push(self, endpoint_id: str, version: str, timeout_s: float,
             on_sent: Callable[[str, int], None] | None = None) -> PushOutcome:
        """Send ``version`` and wait for the ack; ``on_sent(kind, bytes)`` as soon as it is sent, before the wait."""
        with self.lock:
            running = self.fleet.running(endpoint_id) or ""
            if running == version:
                return PushOutcome("skip", 0, True, "already running")
            record = self.registry.get(self.student_name, version)
            parent = self._parent_bytes(running)
            since = time.time()
            try:
                result = self.publisher.push(endpoint_id, record.manifest, record.signature, record.model_bytes,
                                             encoding="auto", parent_bytes=parent,
                                             parent_version=running if parent is not None else "")
            except PayloadTooLarge as exc:  # raised before anything is sent; raising on, the round looped forever
                log.error("cannot push %s to %s: %s (the broker's packet limit); an INT8 student, or a smaller "
                          "one, fits", version, endpoint_id, exc)
                return PushOutcome("full", 0, False, f"too large: {exc}")
            if on_sent is not None:
                on_sent(result.encoding, result.bytes_sent)
            ack = self.fleet.wait_ack(endpoint_id, version, since, timeout_s)
            if ack is None:
                log.warning("%s did not ack %s in %.0f s", endpoint_id, version, timeout_s)
                return PushOutcome(result.encoding, result.bytes_sent, False, "no ack")
            if not ack.ok:
                log.warning("%s refused %s: %s", endpoint_id, version, ack.reason)
            return PushOutcome(result.encoding, result.bytes_sent, ack.ok, ack.reason)

    def _parent_bytes(self, running: str) -> bytes | None:
        """A delta only against a version the registry holds and the endpoint says it runs."""
        if not running or not VERSION_RE.match(running):
            return None
        try:
            return self.registry.get(self.student_name, running).model_bytes
        except (StoreError, KeyError, ValueError):
            return None
