import hashlib
import json
import struct

import pytest

from endpoint.wire import protocol
from endpoint.wire.protocol import Ack, Detection, Plan, ProtocolError, Status, Telemetry

JPEG = b"\xff\xd8" + b"x" * 100 + b"\xff\xd9"


def header(**over):
    fields = dict(endpoint_id="cam-1", frame_id="f0000000001", capture_time=1.5, round=2, model_version="v0001",
                  width=320, height=240, detections=[Detection(cls=1, conf=0.5, box=(0.1, 0.2, 0.3, 0.4))])
    fields.update(over)
    return protocol.make_frame_header(JPEG, **fields)


def test_frame_round_trip():
    payload = protocol.encode_frame(header(), JPEG)
    frame = protocol.decode_frame(payload)
    assert frame.jpeg == JPEG
    assert frame.header == header()


@pytest.mark.parametrize("message", [
    Status(endpoint_id="cam-1", state="online", model_version="v1", time=3.0),
    Telemetry(endpoint_id="cam-1", time=1.0, round=0, model_version="", frames_seen=3, frames_sampled=1,
              frames_acked=1, spool_depth=0, bytes_sent=10, inference_ms=2.5),
    Plan(endpoint_id="cam-1", round=3, upload_budget_bytes=1000, upload_rate_bytes_per_s=100.0),
    Ack(endpoint_id="cam-1", frame_ids=["f1", "f2"]),
])
def test_json_round_trip(message):
    assert protocol.decode(protocol.encode(message)) == message


def _frame_with_raw_header(raw: dict, jpeg: bytes = JPEG) -> bytes:
    head = json.dumps(raw).encode()
    return protocol.FRAME_MAGIC + struct.pack(">I", len(head)) + head + jpeg


GOOD = json.loads(header().model_dump_json())


@pytest.mark.parametrize("payload, reason", [
    (b"", "bad magic"),
    (b"random bytes that are not a frame", "bad magic"),
    (protocol.FRAME_MAGIC + struct.pack(">I", 10_000) + b"{}", "does not fit"),
    (protocol.FRAME_MAGIC + struct.pack(">I", 3) + b"{x}" + JPEG, "not UTF-8 JSON"),
    (_frame_with_raw_header({**GOOD, "v": 2}), "unsupported protocol version 2"),
    (_frame_with_raw_header({k: v for k, v in GOOD.items() if k != "v"}), "unsupported protocol version None"),
    (_frame_with_raw_header({**GOOD, "endpoint_id": "../x"}), "endpoint_id"),
    (_frame_with_raw_header({**GOOD, "extra": 1}), "extra"),
    (_frame_with_raw_header(GOOD, JPEG[:-10]), "truncated"),
    (_frame_with_raw_header(GOOD, JPEG[:-1] + b"\x00"), "sha256"),
    (protocol.FRAME_MAGIC + b"\x00" * (protocol.MAX_FRAME_PAYLOAD_BYTES), "oversized"),
])
def test_decode_frame_rejects_with_reason(payload, reason):
    with pytest.raises(ProtocolError, match=reason):
        protocol.decode_frame(payload)


@pytest.mark.parametrize("payload, reason", [
    (b"\xff\xfe", "not UTF-8 JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b'{"v": 1, "kind": "nope"}', "invalid message"),
    (b'{"v": 9, "kind": "ack", "endpoint_id": "a"}', "version 9"),
    (b'{"v": 1, "kind": "plan", "endpoint_id": "a", "round": -1, "upload_budget_bytes": 1,'
     b' "upload_rate_bytes_per_s": 1}', "round"),
    (b'{"v": 1, "kind": "plan", "endpoint_id": "a", "round": 1000000000, "upload_budget_bytes": 1,'
     b' "upload_rate_bytes_per_s": 1}', "round"),  # round indices go into object keys: bounded
    (b'{"v": 1, "kind": "plan", "endpoint_id": "a", "round": ' + b"9" * 5000 + b', "upload_budget_bytes": 1,'
     b' "upload_rate_bytes_per_s": 1}', "not UTF-8 JSON"),  # json.loads raises a plain ValueError past 4300 digits
    (b'{"v": 1, "kind": "plan", "endpoint_id": "a", "round": 1, "upload_budget_bytes": 1,'
     b' "upload_rate_bytes_per_s": 1, "domain": "\\ud800"}', "domain"),  # a lone surrogate: no UTF-8 holds it
    (b'{"v": 1, "kind": "ack", "endpoint_id": "a", "frame_ids": ["f1", "\\udfff"]}', "frame_ids"),
    # counters feed the learner's metrics and its curve fit: 10**400 raised OverflowError there, on every restart
    (b'{"v": 1, "kind": "telemetry", "endpoint_id": "a", "time": 1, "round": 0, "model_version": "",'
     b' "frames_seen": 0, "frames_sampled": 0, "frames_acked": 0, "spool_depth": 0, "bytes_sent": 1'
     + b"0" * 400 + b', "inference_ms": 1}', "bytes_sent"),
    (b'{"v": 1, "kind": "status", "endpoint_id": "a", "state": "online", "model_version": "v' + b"1" * 5000 + b'"}',
     "model_version"),  # int() of 5000 digits raised in version_number
])
def test_decode_json_rejects_with_reason(payload, reason):
    with pytest.raises(ProtocolError, match=reason):
        protocol.decode(payload)


def test_escaped_text_that_utf8_holds_is_kept():
    plan = protocol.decode(b'{"v": 1, "kind": "plan", "endpoint_id": "a", "round": 1, "upload_budget_bytes": 1,'
                           b' "upload_rate_bytes_per_s": 1, "domain": "d\\u00e9\\ud83d\\ude00"}')
    assert plan.domain == "d\u00e9\U0001f600"  # a surrogate pair is one character
    assert protocol.decode(protocol.encode(plan)) == plan


def test_encode_frame_refuses_a_header_for_other_bytes():
    with pytest.raises(ValueError):
        protocol.encode_frame(header(), JPEG + b"!")


@pytest.mark.parametrize("name, expected", [
    ("edgeloop/v1/cam-1/frame", ("cam-1", "frame")),
    ("edgeloop/v1/a.b_c/ack", ("a.b_c", "ack")),
])
def test_parse_topic(name, expected):
    assert protocol.parse_topic(name) == expected
    assert protocol.topic(*expected) == name


@pytest.mark.parametrize("name", ["edgeloop/v2/cam/frame", "edgeloop/v1/cam", "other/v1/cam/frame",
                                  "edgeloop/v1//frame", "edgeloop/v1/cam/frame/x"])
def test_parse_topic_rejects(name):
    with pytest.raises(ProtocolError):
        protocol.parse_topic(name)


def test_sha_is_of_the_jpeg():
    assert header().jpeg_sha256 == hashlib.sha256(JPEG).hexdigest()
