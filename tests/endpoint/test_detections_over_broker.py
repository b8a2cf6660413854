"""A real endpoint runtime publishes its detections over Mosquitto: rate-limited, outside the upload budget."""

import queue
import threading

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from endpoint.config import EndpointConfig
from endpoint.runtime import EndpointRuntime
from endpoint.wire import protocol
from endpoint.wire.protocol import FrameDetections

pytestmark = pytest.mark.integration

RATE_HZ = 4.0


def _subscriber(port: int, topic: str) -> tuple[mqtt.Client, queue.Queue]:
    received: queue.Queue = queue.Queue()
    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-app", protocol=mqtt.MQTTv311)
    client.on_message = lambda c, u, m: received.put(m)
    client.on_subscribe = lambda *args: subscribed.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.subscribe(topic, qos=1)
    assert subscribed.wait(10)
    return client, received


def test_detections_reach_a_subscriber_at_most_at_the_rate_and_cost_the_uplink_nothing(tmp_path, broker,
                                                                                       tiny_yolo_onnx):
    app, received = _subscriber(broker.port, protocol.topic("cam-d", protocol.FEATURE_DETECTIONS))
    config = EndpointConfig.model_validate({
        "endpoint_id": "cam-d", "broker": {"port": broker.port},
        "source": {"kind": "scenario", "domain": "day", "max_frames": 60, "fps": 30},
        "sampler": {"sample_rate": 0.0},  # nothing uploaded: every byte on the wire is a detections message
        "uplink": {"spool_dir": str(tmp_path / "spool")},
        "model": {"path": str(tiny_yolo_onnx), "version": "v0007"},
        "detections_rate_hz": RATE_HZ, "exit_when_drained": True})
    runtime = EndpointRuntime(config)
    charged: list[int] = []
    consume = runtime.bucket.consume
    runtime.bucket.consume = lambda n, timeout_s=None: charged.append(n) or consume(n, timeout_s)
    worker = threading.Thread(target=runtime.run)
    worker.start()
    worker.join(timeout=60)
    app.loop_stop()
    assert not worker.is_alive()

    messages = []
    while not received.empty():
        m = received.get()
        # delivered at the lower of the publish's QoS and the subscription's (1): 0 is what the endpoint sent.
        # amqtt delivers at the subscription's QoS whatever was sent, so only Mosquitto shows the endpoint's
        assert not m.retain and (m.qos == 0 or broker.kind == "amqtt")
        messages.append(protocol.decode(m.payload))
    assert len(messages) >= 3 and all(isinstance(m, FrameDetections) for m in messages)
    times = [m.frame_time for m in messages]
    assert all(b - a >= 1 / RATE_HZ - 1e-6 for a, b in zip(times, times[1:]))  # never above the rate
    assert len(messages) <= runtime.detections.published <= runtime.stats.frames_seen
    assert {(m.model_version, m.width, m.height) for m in messages} == {("v0007", 320, 240)}
    assert any(m.detections for m in messages)  # the student finds the scenario's objects
    assert runtime.uplink.stats.bytes_sent == 0 and runtime.uplink.stats.frames_sent == 0
    assert charged == []  # the token bucket of the upload link paid for none of it
