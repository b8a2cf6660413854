"""Ingest against the real Mosquitto broker and the real SeaweedFS S3 store: store, dedupe, split, retry, ack."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from edge.frame_index import FrameIndex
from edge.ingest_config import IngestConfig
from edge.store import StoreError
from edge.store.local import LocalStore
from tests.edge.ingest_parts import Peer, frame_payload, ingest_config, make_jpeg

pytestmark = pytest.mark.integration


def test_stores_frames_with_idempotent_keys_and_acks(broker, s3_store, peer, make_ingest):
    ingest = make_ingest(ingest_config(broker), s3_store)
    jpegs = {f"f{i}": make_jpeg(i) for i in range(4)}
    for i, (frame_id, jpeg) in enumerate(jpegs.items()):
        peer.publish("cam-a", frame_payload("cam-a", frame_id, round_index=i % 2, jpeg=jpeg))

    assert ingest.wait_for(4, timeout_s=10)
    assert peer.wait_acked(4)
    assert sorted(peer.acked_ids()) == sorted(jpegs)
    assert s3_store.get("frames/cam-a/r00000/f0.jpg") == jpegs["f0"]
    assert s3_store.get("frames/cam-a/r00001/f3.jpg") == jpegs["f3"]
    index = FrameIndex(s3_store)
    assert (index.endpoints(), index.rounds("cam-a")) == (["cam-a"], [0, 1])
    record = index.frames("cam-a", 1)[0]
    assert record.frame_id == "f1" and record.received_time > record.capture_time - 5
    stats = ingest.stats()
    assert (stats.stored, stats.duplicates, stats.rejected_total, stats.bytes_stored) == (
        4, 0, 0, sum(map(len, jpegs.values())))
    assert ingest.registry.get_sample_value("edgeloop_ingest_frames_stored_total", {"endpoint": "cam-a"}) == 4
    assert ingest.registry.get_sample_value("edgeloop_ingest_bytes_stored_total") == stats.bytes_stored


def test_redelivered_frame_is_stored_once_and_acked_each_time(broker, s3_store, peer, make_ingest):
    ingest = make_ingest(ingest_config(broker), s3_store)
    payload = frame_payload("cam-a", "dup-1")
    for _ in range(3):
        peer.publish("cam-a", payload)

    assert ingest.wait_until(lambda s: s.stored + s.duplicates == 3, timeout_s=10)
    assert peer.wait_acked(3)
    assert peer.acked_ids() == ["dup-1"] * 3
    assert list(s3_store.list("frames/")) == ["frames/cam-a/r00000/dup-1.jpg", "frames/cam-a/r00000/dup-1.json"]
    assert (ingest.stats().stored, ingest.stats().duplicates) == (1, 2)
    assert ingest.registry.get_sample_value("edgeloop_ingest_frames_duplicate_total") == 2


def test_acks_go_out_once_no_frame_of_the_endpoint_is_in_hand(broker, tmp_path, peer, make_ingest):
    """The flush interval is only a bound: an endpoint waits for no timer once its frames are stored."""
    make_ingest(ingest_config(broker, ack_flush_interval_s=300.0), LocalStore(tmp_path))
    for i in range(3):
        peer.publish("cam-a", frame_payload("cam-a", f"f{i}"))
    peer.publish("cam-b", frame_payload("cam-b", "g0"))
    assert peer.wait_acked(4, timeout_s=20), peer.acks
    assert sorted(peer.acked_ids()) == ["f0", "f1", "f2", "g0"]


def test_two_workers_on_a_shared_subscription_split_without_loss_or_duplicates(broker, s3_store, peer, make_ingest):
    if broker.kind == "amqtt":
        pytest.skip("amqtt, the broker where Mosquitto is missing, has no shared subscriptions")
    workers = [make_ingest(ingest_config(broker, shared_group="ingest"), s3_store) for _ in range(2)]
    sent = {(f"cam-{i % 3}", f"f{i:03d}") for i in range(60)}
    for endpoint_id, frame_id in sorted(sent):
        peer.publish(endpoint_id, frame_payload(endpoint_id, frame_id, jpeg=make_jpeg(0)))

    deadline = time.monotonic() + 20
    while sum(w.stats().stored for w in workers) < 60 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert peer.wait_acked(60)
    per_worker = [w.stats().stored for w in workers]
    assert sum(per_worker) == 60 and min(per_worker) > 0, per_worker
    assert sum(w.stats().duplicates for w in workers) == 0
    keys = list(s3_store.list("frames/"))
    assert len(keys) == 120
    index = FrameIndex(s3_store)
    stored = {(e, fid) for e in index.endpoints() for r in index.rounds(e) for fid in index.frame_ids(e, r)}
    assert stored == sent
    assert Counter(peer.acked_ids()) == Counter(fid for _, fid in sent)


class FlakyStore:
    """A LocalStore whose first ``failures`` puts raise StoreError, like an S3 outage."""

    def __init__(self, inner: LocalStore, failures: int):
        self.inner, self.failures = inner, failures
        self.put_calls = 0
        self.last_put_s = 0.0

    def put(self, key, data, content_type="application/octet-stream"):
        self.put_calls += 1
        if self.put_calls <= self.failures:
            raise StoreError("store down (test)")
        self.inner.put(key, data, content_type)
        self.last_put_s = time.monotonic()

    def put_if_absent(self, key, data, content_type="application/octet-stream"):
        self.put_calls += 1
        if self.put_calls <= self.failures:
            raise StoreError("store down (test)")
        written = self.inner.put_if_absent(key, data, content_type)
        self.last_put_s = time.monotonic()
        return written

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_store_outage_is_retried_and_only_then_acked(broker, tmp_path, peer, make_ingest):
    store = FlakyStore(LocalStore(tmp_path / "store"), failures=4)
    ingest = make_ingest(ingest_config(broker), store)
    peer.publish("cam-a", frame_payload("cam-a", "f1"))

    assert ingest.wait_for(1, timeout_s=10)
    assert peer.wait_acked(1)
    ack_time_s, ack = peer.acks[0]
    assert ack.frame_ids == ["f1"] and ack_time_s >= store.last_put_s
    assert ingest.stats().store_errors == 4
    assert store.inner.exists("frames/cam-a/r00000/f1.json") and store.inner.exists("frames/cam-a/r00000/f1.jpg")


def test_unreachable_store_never_acks_and_stop_returns(broker, tmp_path, peer, make_ingest):
    store = FlakyStore(LocalStore(tmp_path / "store"), failures=10**9)
    ingest = make_ingest(ingest_config(broker, queue_max_messages=1, store_concurrency=1, queue_wait_s=0.05), store)
    for i in range(3):  # at most one in the worker's hands and one queued; the rest are dropped unacked
        peer.publish("cam-a", frame_payload("cam-a", f"f{i}"))

    assert ingest.wait_until(lambda s: s.store_errors >= 3 and s.received == 3 and s.rejected.get("queue_full", 0) >= 1,
                             timeout_s=10), ingest.stats()
    time.sleep(0.2)
    assert peer.acked_ids() == [] and ingest.stats().stored == 0
    started_s = time.monotonic()
    ingest.stop()
    assert time.monotonic() - started_s < 3
    assert list(store.inner.list()) == []


def test_ingest_resubscribes_after_broker_restart(broker, tmp_path, peer, make_ingest):
    ingest = make_ingest(ingest_config(broker), LocalStore(tmp_path / "store"))
    peer.close()
    broker.stop()
    deadline = time.monotonic() + 5
    while ingest.connection.connected.is_set() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not ingest.connection.subscribed.is_set()
    broker.start()
    assert ingest.connection.subscribed.wait(15), "ingest did not resubscribe"
    new_peer = Peer(broker)
    try:
        new_peer.publish("cam-a", frame_payload("cam-a", "after-restart"))
        assert ingest.wait_for(1, timeout_s=10)
        assert new_peer.wait_acked(1)
    finally:
        new_peer.close()


def test_run_ingest_serves_metrics_and_returns_on_stop(broker, tmp_path, peer):
    import urllib.request

    from edge.ingest import run_ingest
    from edge.store import StoreConfig
    from pipelines.ports import free_port

    port = free_port()
    config = ingest_config(broker, store=StoreConfig(path=str(tmp_path / "store")), metrics_port=port,
                           stats_log_interval_s=0.1)
    stop = threading.Event()
    result = {}
    thread = threading.Thread(target=lambda: result.update(stats=run_ingest(config, stop)))
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not peer.acks and time.monotonic() < deadline:  # publish until ingest has subscribed
            peer.publish("cam-a", frame_payload("cam-a", "f1"))
            peer.wait_acked(1, timeout_s=0.3)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert 'edgeloop_ingest_frames_stored_total{endpoint="cam-a"} 1.0' in metrics
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive() and result["stats"].stored == 1
    assert LocalStore(tmp_path / "store").exists("frames/cam-a/r00000/f1.json")


def test_ingest_config_is_strict_and_loads_yaml(tmp_path):
    from pydantic import ValidationError

    from endpoint.wire.config_base import load_config

    path = tmp_path / "ingest.yaml"
    path.write_text("broker: {port: 1884}\nshared_group: ''\nstore: {kind: s3, bucket: frames}\n")
    config = load_config(IngestConfig, path, section="ingest")
    assert (config.broker.port, config.shared_group, config.store.bucket) == (1884, "", "frames")
    path.write_text("ingest:\n  broker: {port: 1885}\n")
    assert load_config(IngestConfig, path, section="ingest").broker.port == 1885
    path.write_text("broker: {prot: 1884}\n")
    with pytest.raises(ValidationError, match=r"(?s)IngestConfig in .*ingest\.yaml.*broker\.prot"):
        load_config(IngestConfig, path, section="ingest")
    assert all(field.description for field in IngestConfig.model_fields.values())
