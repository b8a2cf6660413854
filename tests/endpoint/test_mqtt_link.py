"""The endpoint's MQTT link over a real Mosquitto: ``subscribed`` means messages reach the handlers, and a
reconnect clears it until the broker has acked the subscriptions again."""

from __future__ import annotations

import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from endpoint.uplink.link import MqttLink
from endpoint.wire import protocol

pytestmark = pytest.mark.integration


def _publisher(broker) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-publisher", protocol=mqtt.MQTTv311)
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def _wait_until(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


def test_subscribed_means_the_next_message_is_delivered_also_after_a_reconnect(broker):
    got, arrived = [], threading.Event()

    def on_command(payload: bytes) -> None:
        got.append(payload)
        arrived.set()

    link = MqttLink("cam-sub", broker.host, broker.port)
    link.on("cmd", on_command)
    link.on("other", lambda payload: None)  # two features, one SUBSCRIBE: the event waits for the whole session
    assert not link.subscribed.is_set()
    link.start()
    publisher = _publisher(broker)
    try:
        assert link.subscribed.wait(10)
        publisher.publish(protocol.topic("cam-sub", "cmd"), b"first", qos=1).wait_for_publish(5)
        assert arrived.wait(5) and got == [b"first"]

        broker.stop()
        assert _wait_until(lambda: not link.subscribed.is_set(), 10)  # cleared with the connection
        broker.start()
        publisher.loop_stop()
        publisher = _publisher(broker)
        assert link.subscribed.wait(15)  # clean session: the broker forgot them, the link subscribed again
        assert link.connection_count == 2
        arrived.clear()
        publisher.publish(protocol.topic("cam-sub", "cmd"), b"second", qos=1).wait_for_publish(5)
        assert arrived.wait(5) and got == [b"first", b"second"]
    finally:
        publisher.loop_stop()
        publisher.disconnect()
        link.stop()


def test_a_link_without_handlers_is_subscribed_once_connected(broker):
    link = MqttLink("cam-bare", broker.host, broker.port)
    link.start()
    try:
        assert link.connected.wait(10) and link.subscribed.wait(5)
    finally:
        link.stop()
