"""A learner killed during collection and restarted after the schedule ran out has heard no telemetry yet: it read
the round's upload as 0 bytes and charged the next round with it (the scheduler fits its curves on both)."""

from __future__ import annotations

import threading
import time

import pytest

from edge import frame_keys
from edge.learner.collect import Collector
from edge.learner.fleet import FleetView
from edge.learner.round_settings import RoundSettings
from edge.learner.state import TrackState
from edge.mqtt_connection import MqttConnection
from edge.store.local import LocalStore
from endpoint.wire import protocol
from endpoint.wire.protocol import Status, Telemetry

pytestmark = pytest.mark.integration


def _telemetry(round_index: int, bytes_sent: int) -> bytes:
    return protocol.encode(Telemetry(endpoint_id="cam-1", time=time.time(), round=round_index, model_version="",
                                     frames_seen=1, frames_sampled=1, frames_acked=1, spool_depth=0,
                                     bytes_sent=bytes_sent, inference_ms=1.0))


def test_a_resumed_collection_waits_for_the_endpoints_counter(broker, tmp_path):
    camera = MqttConnection("127.0.0.1", broker.port, client_id="cam-1")
    assert camera.start()
    camera.publish(protocol.topic("cam-1", protocol.FEATURE_STATUS),
                   protocol.encode(Status(endpoint_id="cam-1", state="online")), retain=True)
    store = LocalStore(tmp_path / "store")
    store.put(frame_keys.meta_key("cam-1", 1, "f0001"), b"{}")
    track = TrackState(endpoint_id="cam-1", bytes_sent_total=1000)  # saved at the end of round 0
    learner = MqttConnection("127.0.0.1", broker.port, client_id="learner")  # the restarted learner's
    fleet = FleetView(learner, ["cam-1"])
    assert learner.start()
    try:
        assert fleet.wait_running("cam-1", 5.0) is not None
        # the endpoint's next periodic report (counter 6000: 5000 bytes this round) comes a moment later
        report = threading.Timer(1.0, lambda: camera.publish(protocol.topic("cam-1", protocol.FEATURE_TELEMETRY),
                                                              _telemetry(1, 6000), qos=0))
        report.start()
        spent = Collector(store, fleet, ["cam-1"], threading.Event()).wait(
            1, RoundSettings(budget_bytes=10_000, collect_s=60.0), {"cam-1": track}, lambda: False, time.time() - 100)
        report.join()
    finally:
        camera.stop()
        learner.stop()
    assert spent == {"cam-1": 5000} and track.bytes_sent_total == 6000
