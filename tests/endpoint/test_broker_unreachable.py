"""With no broker listening, the endpoint's link and the edge's connection say so (paho retries silently),
and connect once a real Mosquitto starts on that port."""

from __future__ import annotations

import logging
import time

import pytest

from edge.mqtt_connection import MqttConnection
from endpoint.uplink.link import MqttLink
from pipelines.broker import Broker
from pipelines.ports import free_port

pytestmark = pytest.mark.integration


def _wait_until(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    return predicate()


@pytest.mark.parametrize("kind", ["endpoint", "edge"])
def test_no_broker_is_logged_then_the_link_connects_when_it_starts(kind, tmp_path, caplog):
    port = free_port()
    client = (MqttLink("cam-1", "127.0.0.1", port) if kind == "endpoint"
              else MqttConnection("127.0.0.1", port, reconnect_max_delay_s=1))
    warned = f"cannot reach the MQTT broker 127.0.0.1:{port}"
    broker = Broker(port=port, workdir=tmp_path)
    with caplog.at_level(logging.WARNING):
        client.start() if kind == "endpoint" else client.start(timeout_s=None)
        try:
            assert _wait_until(lambda: warned in caplog.text, 10.0)
            broker.start()
            assert client.connected.wait(15.0)
        finally:
            client.stop()
            broker.stop()
    assert caplog.text.count(warned) == 1  # one line per outage, not one per retry
