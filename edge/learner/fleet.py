"""What the endpoints say about themselves: retained status, telemetry and model acks, bound to their topics.

An endpoint's identity is the topic it publishes on (the broker's ACL ties that to its user name),
never the ``endpoint_id`` inside a payload: a message whose payload names another endpoint is dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

from endpoint.wire import protocol
from endpoint.wire.protocol import Ack, ProtocolError, Status, Telemetry

log = logging.getLogger(__name__)

MAX_ACKS_PER_ENDPOINT = 32  # model acks kept per endpoint: pushes are few, a flood must not grow memory


@dataclass(frozen=True)
class ModelAck:
    endpoint_id: str
    version: str
    ok: bool
    reason: str
    received_unix_s: float


class FleetView:
    """The latest report of each known endpoint; ``on_report(endpoint_id)`` fires when its running version changes."""

    def __init__(self, mqtt, endpoint_ids: list[str], on_version: Callable[[str, str], None] | None = None,
                 on_online: Callable[[str], None] | None = None):
        self.endpoint_ids = set(endpoint_ids)
        self.on_version = on_version or (lambda endpoint_id, version: None)
        self.on_online = on_online or (lambda endpoint_id: None)  # it (re)connected: a missed push may be due
        self._lock = threading.Condition()
        self._telemetry: dict[str, Telemetry] = {}
        self._online: dict[str, bool] = {}
        self._running: dict[str, str] = {}
        self._acks: dict[str, deque[ModelAck]] = {ep: deque(maxlen=MAX_ACKS_PER_ENDPOINT) for ep in endpoint_ids}
        self.dropped = 0
        mqtt.subscribe(protocol.topic("+", protocol.FEATURE_STATUS), self._on_message, qos=1)
        mqtt.subscribe(protocol.topic("+", protocol.FEATURE_TELEMETRY), self._on_message, qos=0)
        mqtt.subscribe(protocol.topic("+", protocol.FEATURE_ACK), self._on_message, qos=1)

    # --- reading ----------------------------------------------------------------------------------

    def running(self, endpoint_id: str) -> str | None:
        """The version the endpoint last reported running ('' for no model), or None if it never reported."""
        with self._lock:
            return self._running.get(endpoint_id)

    def online(self, endpoint_id: str) -> bool:
        with self._lock:
            return self._online.get(endpoint_id, False)

    def telemetry(self, endpoint_id: str) -> Telemetry | None:
        with self._lock:
            return self._telemetry.get(endpoint_id)

    def wait_ack(self, endpoint_id: str, version: str, since: float, timeout_s: float) -> ModelAck | None:
        """The first ack of ``version`` from the endpoint received after ``since``, waiting up to ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                for ack in self._acks.get(endpoint_id, ()):
                    if ack.version == version and ack.received_unix_s >= since:
                        return ack
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._lock.wait(left)

    def wait_running(self, endpoint_id: str, timeout_s: float) -> str | None:
        """Wait for the endpoint's first report (its retained status arrives right after we subscribe)."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while endpoint_id not in self._running and time.monotonic() < deadline:
                self._lock.wait(max(0.0, deadline - time.monotonic()))
            return self._running.get(endpoint_id)

    def wait_version(self, endpoint_id: str, version: str, timeout_s: float) -> bool:
        """Whether the endpoint runs ``version``, waiting up to ``timeout_s`` for it to report so; False at once
        on its refusal of ``version``."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._running.get(endpoint_id) != version:
                refused = any(a.version == version and not a.ok for a in self._acks.get(endpoint_id, ()))
                left = deadline - time.monotonic()
                if refused or left <= 0:
                    return False
                self._lock.wait(left)
            return True

    # --- messages ---------------------------------------------------------------------------------

    def _on_message(self, topic: str, payload: bytes) -> None:
        try:
            endpoint_id, feature = protocol.parse_topic(topic)
            message = protocol.decode(payload)
        except ProtocolError as exc:
            self._drop(topic, f"malformed: {exc}")
            return
        if endpoint_id not in self.endpoint_ids:
            return  # not an endpoint this learner serves
        if getattr(message, "endpoint_id", None) != endpoint_id:
            self._drop(topic, f"payload claims to be {getattr(message, 'endpoint_id', None)!r}")
            return
        if isinstance(message, Status) and feature == protocol.FEATURE_STATUS:
            with self._lock:
                came_online = message.state == "online" and not self._online.get(endpoint_id, False)
                self._online[endpoint_id] = message.state == "online"
            if message.state == "online":
                self._report_version(endpoint_id, message.model_version)
            if came_online:
                self.on_online(endpoint_id)
        elif isinstance(message, Telemetry) and feature == protocol.FEATURE_TELEMETRY:
            with self._lock:
                self._telemetry[endpoint_id] = message
                self._online[endpoint_id] = True
            self._report_version(endpoint_id, message.model_version)
        elif isinstance(message, Ack) and feature == protocol.FEATURE_ACK:
            if message.frame_ids or not message.model_version:
                return  # the edge's own frame acks travel on the same topic
            ack = ModelAck(endpoint_id, message.model_version, message.ok, message.reason, time.time())
            with self._lock:
                self._acks[endpoint_id].append(ack)
                self._lock.notify_all()
            if message.ok:
                self._report_version(endpoint_id, message.model_version)
        else:
            self._drop(topic, f"a {message.kind} message on the {feature} topic")

    def _report_version(self, endpoint_id: str, version: str) -> None:
        with self._lock:
            changed = self._running.get(endpoint_id) != version
            self._running[endpoint_id] = version
            self._lock.notify_all()
        if changed:
            log.info("%s reports running %s", endpoint_id, version or "no model")
            try:
                self.on_version(endpoint_id, version)
            except Exception:
                log.exception("reacting to %s running %s failed", endpoint_id, version)

    def _drop(self, topic: str, why: str) -> None:
        with self._lock:
            self.dropped += 1
        log.warning("dropped a message on %s: %s", topic, why)
