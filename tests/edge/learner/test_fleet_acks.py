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
