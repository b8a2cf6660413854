"""Bad uploads are rejected with a reason, counted and logged; valid ones around them are stored and acked."""

from __future__ import annotations

import json
import logging
import random
import time

import pytest

from edge.frame_index import FrameIndex
from edge.frame_checks import peek_frame_id
from edge.ingest import FrameRejected, check_frame_message
from endpoint.wire import protocol
from tests.edge.ingest_parts import frame_payload, header_dict, ingest_config, make_jpeg, raw_payload

TOPIC_A = protocol.topic("cam-a", protocol.FEATURE_FRAME)
TIMESTAMP_ID = "cam_2026-11-30T07:55:00.123Z"  # a natural id a third party picks; ':' breaks the id pattern
NAN, INF = float("nan"), float("inf")  # json.dumps writes them as NaN / Infinity, as a careless client would


def bad_payloads() -> dict[str, tuple[str, bytes]]:
    """name -> (expected reason, payload), each wrong in one way."""
    jpeg = make_jpeg(7)
    cut = jpeg[: len(jpeg) // 2]  # a truncated JPEG whose header's size and sha describe the cut bytes
    header_only = jpeg[:300] + b"\xff\xd9"  # has both markers, but the scan data is missing
    flipped = bytearray(jpeg)
    flipped[len(jpeg) // 2] ^= 0xFF
    return {
        "random bytes": ("malformed", random.Random(1).randbytes(2000)),
        "bad JSON header": ("malformed", raw_payload(b'{"v": 1, "kind": "frame", ', jpeg)),
        "missing fields": ("malformed", raw_payload({"v": 1, "kind": "frame", "endpoint_id": "cam-a"}, jpeg)),
        "wrong version": ("wrong_version", raw_payload(header_dict(jpeg, frame_id="v2", v=2), jpeg)),
        "oversized": ("oversized", raw_payload(header_dict(jpeg), jpeg + bytes(protocol.MAX_FRAME_PAYLOAD_BYTES))),
        "payload cut short": ("truncated", raw_payload(header_dict(jpeg, frame_id="short"), jpeg[:-10])),
        "sha mismatch": ("checksum_mismatch", raw_payload(header_dict(jpeg, frame_id="flip"), bytes(flipped))),
        "truncated JPEG, matching sha": ("corrupt_jpeg", raw_payload(header_dict(cut, frame_id="cut"), cut)),
        "JPEG without scan data": ("corrupt_jpeg", raw_payload(header_dict(header_only, frame_id="hdr"), header_only)),
        "endpoint mismatch": ("identity",
                              raw_payload(header_dict(jpeg, endpoint_id="cam-b", frame_id="other"), jpeg)),
        "timestamp frame id": ("bad_id", raw_payload(header_dict(jpeg, frame_id=TIMESTAMP_ID), jpeg)),
        "NaN capture time": ("malformed", raw_payload(header_dict(jpeg, frame_id="nan", capture_time=NAN), jpeg)),
        "Inf in a box": ("malformed", raw_payload(header_dict(jpeg, frame_id="inf", detections=[
            {"cls": 0, "conf": 0.5, "box": [0.1, 0.1, INF, 0.5]}]), jpeg)),
        "box out of 0..1": ("malformed", raw_payload(header_dict(jpeg, frame_id="far", labels=[
            {"cls": 0, "conf": 1.0, "box": [0.1, 0.1, 7.0, 0.5]}]), jpeg)),
        "huge class id": ("malformed", raw_payload(header_dict(jpeg, frame_id="cls", labels=[
            {"cls": 10**9, "conf": 1.0, "box": [0.1, 0.1, 0.2, 0.5]}]), jpeg)),
        "size not the JPEG's": ("size_mismatch", raw_payload(header_dict(jpeg, frame_id="size", width=640), jpeg)),
        # a 300-digit round would name a key too long to store: retried forever, it held every store worker
        "huge round": ("malformed", raw_payload(header_dict(jpeg, frame_id="rnd", round=10**300), jpeg)),
        # past Python's 4300 digits, json.loads raises a plain ValueError, not a JSONDecodeError
        "5000-digit integer": ("malformed", raw_payload(
            json.dumps(header_dict(jpeg, frame_id="big")).replace('"width": 48', '"width": ' + "9" * 5000).encode(),
            jpeg)),
        # JSON escapes a lone surrogate that UTF-8 cannot hold: the marker failed after its JPEG was stored
        "lone surrogate": ("malformed", raw_payload(header_dict(jpeg, frame_id="sur", domain="\ud800"), jpeg)),
        "lone surrogate in the id": ("bad_id", raw_payload(header_dict(jpeg, frame_id="x\ud800"), jpeg)),
    }


@pytest.mark.parametrize("name", list(bad_payloads()))
def test_check_frame_message_names_the_reason(name):
    reason, payload = bad_payloads()[name]
    with pytest.raises(FrameRejected) as info:
        check_frame_message(TOPIC_A, payload)
    assert info.value.reason == reason


def test_a_refusal_names_only_ids_it_can_send_back():
    """peek_frame_id reads the id of a refused frame; it must neither raise nor return text UTF-8 cannot hold."""
    bad = bad_payloads()
    assert peek_frame_id(bad["lone surrogate in the id"][1]) is None
    assert peek_frame_id(bad["5000-digit integer"][1]) is None
    assert peek_frame_id(bad["lone surrogate"][1]) == "sur"


def test_labels_need_no_conf_and_older_payloads_with_conf_stay_valid():
    jpeg = make_jpeg(7)
    box = [0.1, 0.2, 0.3, 0.4]
    for labels in ([{"cls": 1, "box": box}], [{"cls": 1, "conf": 1.0, "box": box}]):
        frame = check_frame_message(TOPIC_A, raw_payload(header_dict(jpeg, frame_id="gt", labels=labels), jpeg))
        assert frame.header.labels[0].conf == 1.0 and frame.header.labels[0].box == tuple(box)


def test_check_frame_message_accepts_a_valid_frame_and_refuses_foreign_topics():
    payload = frame_payload("cam-a", "ok")
    assert check_frame_message(TOPIC_A, payload).header.frame_id == "ok"
    for topic in ("edgeloop/v1/cam-a/status", "other/v1/cam-a/frame", "edgeloop/v1/cam-a/frame/x"):
        with pytest.raises(FrameRejected, match="bad_topic"):
            check_frame_message(topic, payload)


@pytest.mark.integration
def test_bad_uploads_among_valid_ones_are_rejected_logged_and_counted(broker, s3_store, peer, make_ingest, caplog):
    caplog.set_level(logging.WARNING, logger="edge.ingest")
    ingest = make_ingest(ingest_config(broker), s3_store)
    bad = bad_payloads()
    valid_ids = [f"ok{i}" for i in range(len(bad) + 1)]
    jpegs = {fid: make_jpeg(i) for i, fid in enumerate(valid_ids)}
    # Interleave, and end with a valid frame: ingest must still work after every bad one.
    for fid, (_, payload) in zip(valid_ids, bad.values()):
        peer.publish("cam-a", frame_payload("cam-a", fid, jpeg=jpegs[fid]))
        peer.publish("cam-a", payload)
    peer.publish("cam-a", frame_payload("cam-a", valid_ids[-1], jpeg=jpegs[valid_ids[-1]]))

    assert ingest.wait_until(lambda s: s.stored == len(valid_ids) and s.rejected_total == len(bad), timeout_s=15), \
        ingest.stats()
    expected = {}
    for reason, _ in bad.values():
        expected[reason] = expected.get(reason, 0) + 1
    assert ingest.stats().rejected == expected
    for reason, n in expected.items():
        assert ingest.registry.get_sample_value("edgeloop_ingest_frames_rejected_total", {"reason": reason}) == n
    logged = [r.getMessage() for r in caplog.records if r.name == "edge.ingest" and r.levelno == logging.WARNING]
    for reason, n in expected.items():
        assert sum(f": {reason} (" in m for m in logged) == n, (reason, logged)

    index = FrameIndex(s3_store)
    assert index.endpoints() == ["cam-a"]
    assert index.frame_ids("cam-a", 0) == sorted(valid_ids)
    assert all(s3_store.get(f"frames/cam-a/r00000/{fid}.jpg") == jpegs[fid] for fid in valid_ids)
    assert len(list(s3_store.list("frames/"))) == 2 * len(valid_ids)
    assert peer.wait_acked(len(valid_ids))
    time.sleep(0.1)  # a stray ack for a bad frame would arrive by now
    assert sorted(peer.acked_ids()) == sorted(valid_ids)
    # bad frames whose header names an id are refused by name, so the endpoint stops re-sending them
    assert peer.refused() == {"bad": "oversized", "v2": "wrong_version", "short": "truncated",
                              "flip": "checksum_mismatch", "cut": "corrupt_jpeg", "hdr": "corrupt_jpeg",
                              "other": "identity", TIMESTAMP_ID: "bad_id", "nan": "malformed", "inf": "malformed",
                              "far": "malformed", "cls": "malformed", "size": "size_mismatch", "rnd": "malformed",
                              "sur": "malformed"}
    assert ingest.stats().connected and ingest.stats().stored == len(valid_ids)
