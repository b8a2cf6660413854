"""Model pushes: the binary model_data message, the publisher, and a full + delta push through Mosquitto."""

from __future__ import annotations

import hashlib
import json
import queue
import shutil
import struct

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.publisher import ModelPublisher, PushError
from edge.registry import ModelRegistry
from edge.signing import generate_keypair, load_private_key
from edge.store.local import LocalStore
from endpoint.model.slot import ModelSlot
from endpoint.model.updater import ModelUpdater
from endpoint.model.verify import load_public_key
from endpoint.wire import protocol
from endpoint.wire.protocol import ProtocolError
from tests.push_fixtures import IMAGE, OrtDetector

BODY = b"model bytes " * 100


def _header(**over):
    fields = dict(endpoint_id="cam-1", version="v0002", encoding="full")
    fields.update(over)
    return protocol.make_model_data_header(BODY, **fields)


def test_model_data_round_trip():
    message = protocol.encode_model_data(_header(), BODY)
    assert message[:4] == b"ELM1"
    data = protocol.decode_model_data(message)
    assert data.payload == BODY and data.header == _header()


def _raw(header: dict, body: bytes = BODY) -> bytes:
    head = json.dumps(header).encode()
    return protocol.MODEL_DATA_MAGIC + struct.pack(">I", len(head)) + head + body


GOOD = json.loads(_header().model_dump_json())


@pytest.mark.parametrize("message, reason", [
    (b"", "bad magic"),
    (protocol.FRAME_MAGIC + b"\x00" * 20, "bad magic"),
    (protocol.MODEL_DATA_MAGIC + struct.pack(">I", 10_000) + b"{}", "does not fit"),
    (protocol.MODEL_DATA_MAGIC + struct.pack(">I", 3) + b"{x}" + BODY, "not UTF-8 JSON"),
    (_raw({**GOOD, "v": 2}), "unsupported protocol version 2"),
    (_raw({**GOOD, "encoding": "zip"}), "encoding"),
    (_raw({**GOOD, "extra": 1}), "extra"),
    (_raw(GOOD, BODY[:-1]), "truncated"),
    (_raw(GOOD, b"X" + BODY[1:]), "sha256"),
    (protocol.MODEL_DATA_MAGIC + b"\x00" * protocol.MAX_MODEL_PAYLOAD_BYTES, "oversized"),
])
def test_decode_model_data_rejects_with_reason(message, reason):
    with pytest.raises(ProtocolError, match=reason):
        protocol.decode_model_data(message)


def test_encode_model_data_refuses_mismatched_or_oversized_bodies():
    with pytest.raises(ValueError, match="does not describe"):
        protocol.encode_model_data(_header(), BODY + b"x")
    big = b"\x00" * protocol.MAX_MODEL_PAYLOAD_BYTES
    with pytest.raises(ValueError, match="exceeds"):
        protocol.encode_model_data(protocol.make_model_data_header(big, endpoint_id="c", version="v", encoding="full"),
                                   big)


class FakeClient:
    """Records what a paho-like client was asked to publish."""

    def __init__(self, rc: int = 0):
        self.sent, self.rc = [], rc

    def publish(self, topic, payload, qos=0, retain=False):
        self.sent.append((topic, payload, qos, retain))
        return mqtt.MQTTMessageInfo(1) if not self.rc else type("Info", (), {"rc": self.rc})()


@pytest.fixture(scope="module")
def registry(push_models, tmp_path_factory):
    """base as v0001, few_changed as v0002 (parent v0001)."""
    private_path, public_path = generate_keypair(tmp_path_factory.mktemp("keys"))
    reg = ModelRegistry(LocalStore(tmp_path_factory.mktemp("store")), load_private_key(private_path))
    for path in (push_models.base, push_models.few_changed):
        reg.publish("student", path, format="onnx-int8", input_size=(64, 64), class_names=[])
    reg.public_key = load_public_key(public_path)
    return reg


def test_push_counts_the_bytes_of_both_messages(registry):
    client = FakeClient()
    manifest, model, signature = registry.get("student", "v0002")
    result = ModelPublisher(client).push("cam-1", manifest, signature, model, encoding="auto",
                                         parent_bytes=registry.get("student", "v0001").model_bytes)
    topics = [t for t, *_ in client.sent]
    assert topics == ["edgeloop/v1/cam-1/model", "edgeloop/v1/cam-1/model_data"]
    assert all(qos == 1 and not retain for _, _, qos, retain in client.sent)
    assert result.bytes_sent == sum(len(p) for _, p, *_ in client.sent)
    assert result.encoding == "delta" and result.bytes_sent < result.full_bytes / 2
    announcement = protocol.decode(client.sent[0][1])
    assert (announcement.encoding, announcement.parent_version, announcement.url) == ("delta", "v0001",
                                                                                       "mqtt:model_data")


def test_push_errors(registry):
    manifest, model, signature = registry.get("student", "v0002")
    with pytest.raises(ValueError, match="parent_bytes"):
        ModelPublisher(FakeClient()).push("cam-1", manifest, signature, model, encoding="delta")
    with pytest.raises(PushError):
        ModelPublisher(FakeClient(rc=mqtt.MQTT_ERR_QUEUE_SIZE)).push("cam-1", manifest, signature, model)
    client = FakeClient()
    with pytest.raises(ValueError, match="exceeds"):
        ModelPublisher(client).push("cam-1", manifest, signature, b"\x00" * protocol.MAX_MODEL_PAYLOAD_BYTES)
    assert client.sent == []  # nothing half-sent


def _client(broker, name: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv311)
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


@pytest.mark.integration
def test_full_then_delta_push_through_mosquitto(broker, push_models, tmp_path):
    """Edge and endpoint on separate paho clients: full push, then delta push, each verified, swapped, acked."""
    private_path, public_path = generate_keypair(tmp_path / "keys")
    registry = ModelRegistry(LocalStore(tmp_path / "store"), load_private_key(private_path))
    # v0001 runs on the endpoint; v0002 differs everywhere (full push), v0003 in three tensors (delta).
    for path in (push_models.all_changed, push_models.base, push_models.few_changed):
        registry.publish("student", path, format="onnx-int8", input_size=(64, 64), class_names=[])
    models_dir = tmp_path / "endpoint-models"
    models_dir.mkdir()
    shutil.copy(push_models.all_changed, models_dir / "v0001.onnx")
    slot = ModelSlot(OrtDetector, models_dir / "v0001.onnx", "v0001")

    endpoint = _client(broker, "endpoint-cam-1")
    updater = ModelUpdater(slot, models_dir, load_public_key(public_path), endpoint_id="cam-1",
                           send_ack=lambda ack: endpoint.publish(protocol.topic("cam-1", protocol.FEATURE_ACK),
                                                                 protocol.encode(ack), qos=1))
    handlers = {protocol.FEATURE_MODEL: updater.on_announcement, protocol.FEATURE_MODEL_DATA: updater.on_model_data}
    endpoint.on_message = lambda c, u, msg: handlers[protocol.parse_topic(msg.topic)[1]](msg.payload)
    subscribed = queue.Queue()
    endpoint.on_subscribe = lambda *args: subscribed.put(True)
    endpoint.subscribe([(protocol.topic("cam-1", f), 1) for f in handlers])

    edge = _client(broker, "edge-publisher")
    acks = queue.Queue()
    edge.on_message = lambda c, u, msg: acks.put(protocol.decode(msg.payload))
    edge.on_subscribe = lambda *args: subscribed.put(True)
    edge.subscribe(protocol.topic("cam-1", protocol.FEATURE_ACK), qos=1)
    subscribed.get(timeout=10), subscribed.get(timeout=10)
    try:
        publisher = ModelPublisher(edge)
        manifest, model, signature = registry.get("student", "v0002")
        full = publisher.push("cam-1", manifest, signature, model)
        ack = acks.get(timeout=30)
        assert (ack.model_version, ack.ok) == ("v0002", True), ack.reason
        assert slot.version == "v0002" and slot.detect(IMAGE)[0] == "v0002.onnx"

        parent = model
        manifest, model, signature = registry.get("student", "v0003")
        delta = publisher.push("cam-1", manifest, signature, model, encoding="delta", parent_bytes=parent)
        ack = acks.get(timeout=30)
        assert (ack.model_version, ack.ok) == ("v0003", True), ack.reason
        assert slot.version == "v0003" and slot.detect(IMAGE)[0] == "v0003.onnx"
        rebuilt = (models_dir / "v0003.onnx").read_bytes()
        assert hashlib.sha256(rebuilt).hexdigest() == registry.latest("student").sha256
        print(f"\nthrough Mosquitto: full push {full.bytes_sent} bytes, delta push {delta.bytes_sent} bytes")
        assert delta.encoding == "delta" and delta.bytes_sent < full.bytes_sent / 2
        assert acks.empty()
    finally:
        for client in (edge, endpoint):
            client.disconnect()
            client.loop_stop()
