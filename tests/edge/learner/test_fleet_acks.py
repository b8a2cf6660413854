"""The fleet view keeps a bounded window of model acks per endpoint, and the newest is always in it."""

from __future__ import annotations

import time

from edge.learner.fleet import MAX_ACKS_PER_ENDPOINT, FleetView
from endpoint.wire import protocol
from endpoint.wire.protocol import Ack


class _RecordingMqtt:
    """Stands in for MqttConnection: keeps the handler of each subscribed topic filter."""

    def __init__(self):
        self.handlers = {}

    def subscribe(self, topic_filter, handler, qos=1):
        self.handlers[topic_filter] = handler


def test_a_flood_of_model_acks_stays_bounded_and_the_latest_is_found():
    mqtt = _RecordingMqtt()
    fleet = FleetView(mqtt, ["cam-1"])
    on_ack = mqtt.handlers[protocol.topic("+", protocol.FEATURE_ACK)]
    since = time.time()
    for i in range(1000):
        ack = Ack(endpoint_id="cam-1", model_version=f"v{i:04d}", ok=True)
        on_ack(protocol.topic("cam-1", protocol.FEATURE_ACK), protocol.encode(ack))
    assert fleet.dropped == 0
    latest = fleet.wait_ack("cam-1", "v0999", since, timeout_s=0.0)
    assert latest is not None and latest.ok and latest.version == "v0999"
    # exactly the newest MAX_ACKS_PER_ENDPOINT are kept: the oldest of them is found, the one before it is gone
    oldest_kept = 1000 - MAX_ACKS_PER_ENDPOINT
    assert MAX_ACKS_PER_ENDPOINT < 1000
    assert fleet.wait_ack("cam-1", f"v{oldest_kept:04d}", since, timeout_s=0.0) is not None
    assert fleet.wait_ack("cam-1", f"v{oldest_kept - 1:04d}", since, timeout_s=0.0) is None
    assert fleet.wait_ack("cam-1", "v0000", since, timeout_s=0.0) is None
    assert fleet.running("cam-1") == "v0999"


def test_waiting_for_a_version_ends_on_its_report_or_refusal():
    """A learner restarted while an endpoint installs a push waits for the endpoint to run it, not just once."""
    import threading

    mqtt = _RecordingMqtt()
    fleet = FleetView(mqtt, ["cam-1"])
    on_ack = mqtt.handlers[protocol.topic("+", protocol.FEATURE_ACK)]
    topic = protocol.topic("cam-1", protocol.FEATURE_ACK)
    assert not fleet.wait_version("cam-1", "v0002", timeout_s=0.05)
    timer = threading.Timer(0.2, on_ack, (topic, protocol.encode(Ack(endpoint_id="cam-1", model_version="v0002",
                                                                      ok=True))))
    timer.start()
    started = time.monotonic()
    assert fleet.wait_version("cam-1", "v0002", timeout_s=30)
    assert time.monotonic() - started < 10
    on_ack(topic, protocol.encode(Ack(endpoint_id="cam-1", model_version="v0003", ok=False, reason="bad signature")))
    started = time.monotonic()
    assert not fleet.wait_version("cam-1", "v0003", timeout_s=30) and time.monotonic() - started < 1
