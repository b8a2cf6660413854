"""The wire contract as a third party meets it, and a durable commit: on the real broker and stores."""

from __future__ import annotations

import json
import threading

import pytest

from edge.frame_index import FrameIndex
from edge.store.local import LocalStore
from endpoint.wire import protocol
from tests.edge.ingest_parts import ack_listener, frame_payload, header_dict, ingest_config, make_jpeg, raw_payload

pytestmark = pytest.mark.integration


class RawAcks:
    """Collects ack payloads as plain JSON, as a client that does not share our pydantic models would."""

    def __init__(self, broker):
        self.acks: list[tuple[str, dict]] = []
        self._cond = threading.Condition()
        self.client = ack_listener(broker, "raw", self._on_message)

    def _on_message(self, client, userdata, message) -> None:
        with self._cond:
            self.acks.append((message.topic, json.loads(message.payload)))
            self._cond.notify_all()

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def wait(self, n: int, timeout_s: float = 10.0) -> list[tuple[str, dict]]:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.acks) >= n, timeout_s), self.acks
            return list(self.acks)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def raw(broker):
    r = RawAcks(broker)
    yield r
    r.close()


def test_frame_id_reused_with_other_bytes_is_refused_as_conflict(broker, s3_store, peer, make_ingest):  # noqa: F811
    ingest = make_ingest(ingest_config(broker), s3_store)
    first, other = make_jpeg(1), make_jpeg(2)
    peer.publish("cam-a", frame_payload("cam-a", "f1", jpeg=first))
    assert peer.wait_acked(1)
    peer.publish("cam-a", frame_payload("cam-a", "f1", jpeg=other))
    assert ingest.wait_until(lambda s: s.rejected.get("conflict") == 1, timeout_s=10), ingest.stats()
    peer.publish("cam-a", frame_payload("cam-a", "f1", jpeg=first))  # the same bytes again: a plain redelivery
    assert peer.wait_acked(2)

    assert peer.refused() == {"f1": "conflict"}
    assert peer.acked_ids() == ["f1", "f1"]
    assert s3_store.get("frames/cam-a/r00000/f1.jpg") == first  # the first bytes stay
    assert (ingest.stats().stored, ingest.stats().duplicates) == (1, 1)


def test_endpoint_id_over_64_chars_gets_a_refusal_counted_once(broker, tmp_path, raw, make_ingest):  # noqa: F811
    ingest = make_ingest(ingest_config(broker), LocalStore(tmp_path / "store"))
    long_id = "cam-" + "x" * 70
    jpeg = make_jpeg(3)
    raw.publish(protocol.topic(long_id, protocol.FEATURE_FRAME),
                raw_payload(header_dict(jpeg, endpoint_id=long_id, frame_id="f1"), jpeg))

    [(topic, ack)] = raw.wait(1)
    assert topic == protocol.topic(long_id, protocol.FEATURE_ACK)
    assert (ack["ok"], ack["reason"], ack["frame_ids"], ack["endpoint_id"]) == (False, "bad_id", ["f1"], long_id)
    assert ingest.wait_until(lambda s: s.rejected == {"bad_id": 1} and s.received == 1, timeout_s=5), ingest.stats()


def test_timestamp_frame_id_gets_a_refusal_so_the_client_stops(broker, tmp_path, peer, make_ingest):  # noqa: F811
    ingest = make_ingest(ingest_config(broker), LocalStore(tmp_path / "store"))
    jpeg = make_jpeg(4)
    frame_id = "cam_2026-11-30T07:55:00.123Z"
    peer.publish("cam-a", raw_payload(header_dict(jpeg, frame_id=frame_id), jpeg))
    peer.publish("cam-a", frame_payload("cam-a", "ok-1"))
    assert peer.wait_acked(1)
    assert peer.wait_refused(1)
    assert peer.refused() == {frame_id: "bad_id"}
    assert ingest.stats().rejected == {"bad_id": 1}


def test_empty_marker_from_a_power_cut_does_not_count_as_stored(broker, tmp_path, peer, make_ingest):  # noqa: F811
    store = LocalStore(tmp_path / "store")
    store.put("frames/cam-a/r00000/f1.json", b"")  # what a rename without fsync can leave after a power cut
    store.put("frames/cam-a/r00000/f1.jpg", b"\xff\xd8")
    ingest = make_ingest(ingest_config(broker), store)
    jpeg = make_jpeg(5)
    peer.publish("cam-a", frame_payload("cam-a", "f1", jpeg=jpeg))

    assert peer.wait_acked(1)
    assert (ingest.stats().stored, ingest.stats().duplicates) == (1, 0)
    assert store.get("frames/cam-a/r00000/f1.jpg") == jpeg
    assert [r.frame_id for r in FrameIndex(store).frames("cam-a", 0)] == ["f1"]


def test_local_disk_error_is_retried_then_stored_and_acked(broker, tmp_path, peer, make_ingest):  # noqa: F811
    store = LocalStore(tmp_path / "store")
    blocker = tmp_path / "store" / "frames" / "cam-a"
    blocker.parent.mkdir(parents=True)
    blocker.write_bytes(b"a file where the endpoint's folder belongs")  # every put below it fails with OSError
    ingest = make_ingest(ingest_config(broker), store)
    peer.publish("cam-a", frame_payload("cam-a", "f1"))

    assert ingest.wait_until(lambda s: s.store_errors >= 2, timeout_s=10), ingest.stats()
    assert peer.acked_ids() == []
    blocker.unlink()
    assert ingest.wait_for(1, timeout_s=10)
    assert peer.wait_acked(1)
    assert ingest.stats().rejected == {}
