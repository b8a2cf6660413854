"""The detections message: typed and bounded on the wire, rate-limited by frame time, off at 0 Hz."""

import json
import math
import threading

import pytest
from pydantic import ValidationError

from endpoint.uplink.detections_publisher import DetectionsPublisher
from endpoint.wire import protocol
from endpoint.wire.protocol import MAX_DETECTIONS_PER_MESSAGE, Detection, FrameDetections, ProtocolError

T0 = 1_795_000_000.0


class _FakeLink:
    def __init__(self, connected=True):
        self.connected = threading.Event()
        if connected:
            self.connected.set()
        self.sent: list[tuple[str, bytes, int]] = []

    def publish(self, feature, payload, qos=1, retain=False):
        self.sent.append((feature, payload, qos))


def _box(conf: float) -> Detection:
    return Detection(cls=1, conf=conf, box=(0.1, 0.2, 0.3, 0.4))


def test_at_most_rate_hz_messages_per_second_of_frame_time():
    link = _FakeLink()
    publisher = DetectionsPublisher(link, "cam-1", rate_hz=2.0)
    for i in range(30):  # 3 s of a 10 fps camera
        publisher.offer(T0 + i * 0.1, "v0001", 320, 240, [_box(0.9)])
    times = [protocol.decode(payload).frame_time for _, payload, _ in link.sent]
    assert len(times) == 6
    assert all(b - a >= 0.5 - 1e-9 for a, b in zip(times, times[1:]))
    assert {(feature, qos) for feature, _, qos in link.sent} == {(protocol.FEATURE_DETECTIONS, 0)}


def test_zero_rate_turns_it_off_and_a_missing_broker_sends_nothing():
    off = _FakeLink()
    assert not DetectionsPublisher(off, "cam-1", rate_hz=0).offer(T0, "v1", 320, 240, [_box(0.9)])
    offline = _FakeLink(connected=False)
    assert not DetectionsPublisher(offline, "cam-1", rate_hz=5).offer(T0, "v1", 320, 240, [_box(0.9)])
    assert off.sent == [] and offline.sent == []


def test_a_clock_stepped_back_does_not_silence_the_endpoint():
    link = _FakeLink()
    publisher = DetectionsPublisher(link, "cam-1", rate_hz=1.0)
    assert publisher.offer(T0, "v1", 320, 240, [])
    assert publisher.offer(T0 - 3600, "v1", 320, 240, [])  # NTP moved the wall clock back an hour


def test_the_best_boxes_are_kept_when_there_are_too_many():
    link = _FakeLink()
    boxes = [_box(round(0.001 * (i % 1000), 3)) for i in range(MAX_DETECTIONS_PER_MESSAGE + 50)]
    DetectionsPublisher(link, "cam-1", rate_hz=1.0).offer(T0, "v1", 320, 240, boxes)
    message = protocol.decode(link.sent[0][1])
    assert len(message.detections) == MAX_DETECTIONS_PER_MESSAGE
    assert min(d.conf for d in message.detections) >= sorted((d.conf for d in boxes), reverse=True)[
        MAX_DETECTIONS_PER_MESSAGE - 1]


def test_a_bad_frame_time_is_logged_not_raised():
    link = _FakeLink()
    assert not DetectionsPublisher(link, "cam-1", rate_hz=1.0).offer(math.nan, "v1", 320, 240, [])
    assert link.sent == []


def test_the_message_round_trips_and_refuses_oversized_lists_and_bad_numbers():
    message = FrameDetections(endpoint_id="cam-1", frame_time=T0, model_version="v0003", width=320, height=240,
                              detections=[_box(0.8)])
    assert protocol.decode(protocol.encode(message)) == message
    raw = message.model_dump()
    with pytest.raises(ValidationError):
        FrameDetections.model_validate({**raw, "detections": [_box(0.5)] * (MAX_DETECTIONS_PER_MESSAGE + 1)})
    for bad in ({"frame_time": "NaN"}, {"width": 0}, {"endpoint_id": "cam/1"}, {"kind": "detection"}):
        tampered = json.dumps({**raw, **bad}).replace('"NaN"', "NaN")  # Python's json writes a bare NaN
        with pytest.raises(ProtocolError):
            protocol.decode(tampered.encode())
