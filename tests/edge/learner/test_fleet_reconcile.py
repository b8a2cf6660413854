"""The learner believes what endpoints report on their own topics, and brings a returning endpoint to its version.

Real Mosquitto; the endpoint side is played by a test client publishing what a real endpoint publishes.
"""

from __future__ import annotations

import queue
import time

import pytest

from edge.learner.fleet import FleetView
from edge.learner.pusher import Pusher
from edge.learner.reconcile import Reconciler
from edge.mqtt_connection import MqttConnection
from edge.registry import ModelRegistry
from edge.signing import generate_keypair, load_private_key
from edge.store.local import LocalStore
from endpoint.wire import protocol
from endpoint.wire.protocol import Ack, Status, Telemetry

pytestmark = pytest.mark.integration


def connect(broker, client_id: str) -> MqttConnection:
    mqtt = MqttConnection("127.0.0.1", broker.port, client_id=client_id)
    assert mqtt.start()
    return mqtt


def telemetry(endpoint_id: str, version: str, round_done: bool = False) -> bytes:
    return protocol.encode(Telemetry(endpoint_id=endpoint_id, time=time.time(), round=0, model_version=version,
                                     frames_seen=1, frames_sampled=1, frames_acked=1, spool_depth=0, bytes_sent=10,
                                     inference_ms=1.0, round_done=round_done))


def wait_for(predicate, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    return predicate()


def test_reports_count_only_on_the_endpoints_own_topic(broker):
    edge = connect(broker, "learner")
    fleet = FleetView(edge, ["cam-1", "cam-2"])
    cam2 = connect(broker, "cam-2")
    try:
        cam2.publish(protocol.topic("cam-2", protocol.FEATURE_STATUS),
                     protocol.encode(Status(endpoint_id="cam-2", state="online", model_version="v0001")))
        assert wait_for(lambda: fleet.running("cam-2") == "v0001")
        # cam-2's credentials may publish only under cam-2: it claims to be cam-1 running v0009, and done
        cam2.publish(protocol.topic("cam-2", protocol.FEATURE_ACK),
                     protocol.encode(Ack(endpoint_id="cam-1", model_version="v0009", ok=True)))
        cam2.publish(protocol.topic("cam-2", protocol.FEATURE_TELEMETRY), telemetry("cam-1", "v0009", True))
        assert wait_for(lambda: fleet.dropped == 2)
        assert fleet.running("cam-1") is None and fleet.telemetry("cam-1") is None
        assert fleet.running("cam-2") == "v0001"
        assert fleet.wait_ack("cam-1", "v0009", since=0.0, timeout_s=0.1) is None
    finally:
        cam2.stop()
        edge.stop()


def test_a_returning_endpoint_gets_its_version_as_a_delta_from_what_it_reports(broker, tmp_path, push_models):
    store = LocalStore(tmp_path / "store")
    registry = ModelRegistry(store, load_private_key(generate_keypair(tmp_path / "keys")[0]))
    for path in (push_models.base, push_models.few_changed):
        registry.publish("student", path, format="onnx-int8", input_size=(64, 64), class_names=["a"])
    edge = connect(broker, "learner")
    fleet = FleetView(edge, ["cam-1"])
    reconciler = Reconciler(fleet, Pusher(edge, registry, fleet, "student"), lambda ep: "v0002", ["cam-1"],
                            push_timeout_s=10)
    fleet.on_version = lambda ep, version: reconciler.kick()
    reconciler.start()
    cam1 = connect(broker, "cam-1")
    pushes: queue.Queue = queue.Queue()
    cam1.subscribe(protocol.topic("cam-1", protocol.FEATURE_MODEL_DATA),
                   lambda topic, payload: pushes.put(protocol.decode_model_data(payload).header), qos=1)
    try:
        assert cam1.subscribed.wait(10)
        # back from a reboot, running v0001 (its status, retained, as a real endpoint publishes on connect)
        cam1.publish(protocol.topic("cam-1", protocol.FEATURE_STATUS),
                     protocol.encode(Status(endpoint_id="cam-1", state="online", model_version="v0001")), retain=True)
        header = pushes.get(timeout=15)
        assert (header.version, header.encoding, header.parent_version) == ("v0002", "delta", "v0001")
        cam1.publish(protocol.topic("cam-1", protocol.FEATURE_ACK),
                     protocol.encode(Ack(endpoint_id="cam-1", model_version="v0002", ok=True)))
        assert wait_for(lambda: fleet.running("cam-1") == "v0002")
        reconciler.kick()
        with pytest.raises(queue.Empty):
            pushes.get(timeout=2)  # on its version now: no second push
    finally:
        reconciler.stop()
        cam1.stop()
        edge.stop()
