"""The split server under hostile requests: every request answered or refused with a reason, the worker lives,
the queue is bounded, the sender's identity is the topic's, and non-finite numbers are refused."""

import json
import queue
import struct
import threading

import cv2
import numpy as np
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.split.server import SplitServer
from edge.split.split_set import MANIFEST_NAME, PairInfo, SplitSetManifest
from endpoint.wire import protocol
from endpoint.wire.feature_codec import CodecSpec, encode_tensors
from endpoint.wire.split_protocol import (FEATURE_SPLIT_REQUEST, FEATURE_SPLIT_RESULT, JPEG_PAIR_ID, SplitRequestHeader,
                                          decode_result, decode_split_request, encode_split_request)
from endpoint.wire.protocol import ProtocolError, pack_binary


def _manifest_only_set(folder, shapes=((1, 8, 4, 4),)):
    """A split set folder with a manifest and no ONNX files: enough for everything before a tail runs."""
    pair = PairInfo(key="after2", split_after=2, crossing=[2], crossing_shapes=[list(s) for s in shapes],
                    head="after2.head.onnx", tail="after2.tail.onnx", pair_id="cafe01")
    manifest = SplitSetManifest(source_sha256="0" * 64, imgsz=32, layers=4, class_names=["car"],
                                layer_gflops=[0.0] * 4, pairs=[pair])
    (folder / MANIFEST_NAME).write_text(manifest.model_dump_json())
    return folder


def _request(endpoint_id: str, payload: bytes, pair_id: str = "cafe01", number: int = 0, **fields) -> bytes:
    header = SplitRequestHeader(endpoint_id=endpoint_id, request_id=f"{endpoint_id}-{number:08d}", pair_id=pair_id,
                                codec="q8c-zlib", source_width=64, source_height=48, sent_time=1.0,
                                payload_bytes=len(payload), **fields)
    return encode_split_request(header, payload)


def _jpeg_claiming(width: int, height: int) -> bytes:
    """A small valid JPEG whose SOF0 header is patched to claim ``width`` x ``height``."""
    ok, jpeg = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))
    data = bytearray(jpeg.tobytes())
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


class _Captured:
    def __init__(self, server: SplitServer):
        self.sent: list[tuple[str, bytes]] = []
        server.mqtt.publish = lambda topic, payload, qos=1, retain=False: self.sent.append((topic, payload)) or True


def test_a_full_queue_answers_busy_instead_of_growing(tmp_path):
    server = SplitServer(_manifest_only_set(tmp_path), "127.0.0.1", 1, max_queue=3)  # the worker is not started
    captured = _Captured(server)
    topic = protocol.topic("cam-1", FEATURE_SPLIT_REQUEST)
    for i in range(5):
        server._on_request(topic, _request("cam-1", b"x", number=i))
    assert len(server._queue) == 3
    results = [decode_result(payload) for _, payload in captured.sent]
    assert [(r.request_id, r.ok, r.reason) for r in results] == [("cam-1-00000003", False, "busy"),
                                                                  ("cam-1-00000004", False, "busy")]
    assert {t for t, _ in captured.sent} == {protocol.topic("cam-1", FEATURE_SPLIT_RESULT)}


def test_a_request_claiming_another_endpoint_is_refused_to_its_sender(tmp_path):
    server = SplitServer(_manifest_only_set(tmp_path), "127.0.0.1", 1)
    captured = _Captured(server)
    server._on_request(protocol.topic("cam-2", FEATURE_SPLIT_REQUEST), _request("cam-1", b"x"))
    assert not server._queue
    [(topic, payload)] = captured.sent
    result = decode_result(payload)
    assert topic == protocol.topic("cam-2", FEATURE_SPLIT_RESULT)  # never on cam-1's topic
    assert not result.ok and result.reason.startswith("endpoint_mismatch")


@pytest.mark.parametrize("field", ["link_bytes_per_s", "sent_time"])
@pytest.mark.parametrize("value", ["Infinity", "NaN", "-Infinity"])
def test_non_finite_numbers_are_refused(field, value):
    good = json.loads(SplitRequestHeader(endpoint_id="cam-1", request_id="cam-1-00000001", pair_id="cafe01",
                                         codec="q8c-zlib", source_width=64, source_height=48, sent_time=1.0,
                                         payload_bytes=1).model_dump_json())
    text = json.dumps({**good, field: 0.0}).replace(f'"{field}": 0.0', f'"{field}": {value}')
    message = pack_binary(b"ELS1", text.encode(), b"x", 1 << 20, "split request")
    with pytest.raises(ProtocolError, match=field):
        decode_split_request(message)


def test_features_of_another_shape_are_refused_before_the_tail(tmp_path):
    server = SplitServer(_manifest_only_set(tmp_path), "127.0.0.1", 1)
    server._tail = lambda pair_id: None  # no ONNX in this set: the decoder must refuse before a tail is needed
    bomb = encode_tensors([np.zeros((1, 64, 400, 400), np.float32)], CodecSpec.parse("q8c-zlib"))
    request = decode_split_request(_request("cam-1", bomb))
    result = server.handle(request)
    assert not result.ok and result.reason.startswith("bad_features") and "expects" in result.reason


@pytest.mark.integration
def test_a_jpeg_claiming_60000_squared_is_refused_and_the_worker_keeps_serving(broker, split_set):
    folder, _ = split_set
    server = SplitServer(folder, broker.host, broker.port, threads=1).start()
    replies: queue.Queue = queue.Queue()
    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="cam-bomb", protocol=mqtt.MQTTv311)
    client.on_message = lambda c, u, msg: replies.put(decode_result(msg.payload))
    client.on_subscribe = lambda *args: subscribed.set()
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        client.subscribe(protocol.topic("cam-bomb", FEATURE_SPLIT_RESULT), qos=0)
        assert subscribed.wait(10)
        bomb = _jpeg_claiming(60000, 60000)
        assert len(bomb) < 1024
        ok, good = cv2.imencode(".jpg", np.full((48, 64, 3), 90, np.uint8))
        client.publish(protocol.topic("cam-bomb", FEATURE_SPLIT_REQUEST),
                       _request("cam-bomb", bomb, pair_id=JPEG_PAIR_ID, number=1), qos=0)
        refusal = replies.get(timeout=10)
        assert refusal.request_id == "cam-bomb-00000001" and not refusal.ok
        assert refusal.reason.startswith("bad_payload") and "exceeds" in refusal.reason
        client.publish(protocol.topic("cam-bomb", FEATURE_SPLIT_REQUEST),
                       _request("cam-bomb", good.tobytes(), pair_id=JPEG_PAIR_ID, number=2), qos=0)
        answer = replies.get(timeout=10)
        assert answer.request_id == "cam-bomb-00000002" and answer.ok, answer.reason
        assert server.worker_alive()
    finally:
        client.loop_stop()
        client.disconnect()
        server.stop()


def test_the_split_server_reads_its_broker_password_from_a_file(tmp_path):
    import argparse

    from edge.split.server_args import add_split_server_arguments, broker_config_from_args

    parser = argparse.ArgumentParser()
    add_split_server_arguments(parser)
    (tmp_path / "split.password").write_text("s3cret\n")
    args = parser.parse_args(["--set-dir", "x", "--username", "split", "--password-file",
                              str(tmp_path / "split.password"), "--tls-ca-file", "ca.crt", "--max-queue", "4"])
    broker = broker_config_from_args(args)
    assert (broker.username, broker.mqtt_password(), broker.tls_ca_file, args.max_queue) == \
        ("split", "s3cret", "ca.crt", 4)


def test_the_split_server_takes_a_broker_config_file_and_flags_override_it(tmp_path, monkeypatch):
    import argparse

    from edge.split.server_args import add_split_server_arguments, broker_config_from_args

    parser = argparse.ArgumentParser()
    add_split_server_arguments(parser)
    config = tmp_path / "endpoint.yaml"  # any file with a broker: section, e.g. an endpoint's config
    config.write_text("endpoint_id: cam-1\nbroker: {host: edge.lan, port: 8883, username: split, "
                      "password_env: SPLIT_MQTT_PASSWORD, tls_ca_file: ca.crt}\n")
    monkeypatch.setenv("SPLIT_MQTT_PASSWORD", "from-env")
    broker = broker_config_from_args(parser.parse_args(["--set-dir", "x", "--broker-config", str(config),
                                                        "--port", "9883"]))
    assert (broker.host, broker.port, broker.username, broker.mqtt_password(), broker.tls_ca_file) == \
        ("edge.lan", 9883, "split", "from-env", "ca.crt")
