"""Shared helpers of the uplink tests: a link that records what it sends, and a bounded wait for a condition."""

import threading
import time
from types import SimpleNamespace

from endpoint.wire import protocol
from endpoint.wire.protocol import Ack


class FakeLink:
    """Stands in for MqttLink: always connected, records payloads, hands acks to the uplink's handler."""

    def __init__(self):
        self.connected = threading.Event()
        self.connected.set()
        self.connection_count = 1
        self.sent: list[bytes] = []
        self.handlers = {}
        self.lock = threading.Lock()

    def on(self, feature, handler):
        self.handlers[feature] = handler

    def publish(self, feature, payload, qos=1, retain=False):
        with self.lock:
            self.sent.append(payload)
        return SimpleNamespace(rc=0)

    def ack(self, ids, ok=True):
        self.handlers["ack"](protocol.encode(Ack(endpoint_id="cam", frame_ids=ids, ok=ok, reason="" if ok else "x")))


def wait_until(cond, timeout_s=5.0):
    """Poll ``cond`` until it holds or ``timeout_s`` passes; whether it held."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return False
