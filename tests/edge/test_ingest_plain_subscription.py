"""Ingest on a broker without shared subscriptions (the embedded amqtt): a plain subscription stores and acks."""

from __future__ import annotations

import pytest

from edge.frame_index import FrameIndex
from edge.ingest_config import IngestConfig
from endpoint.wire.broker_config import BrokerConfig
from edge.store.local import LocalStore
from tests.edge.ingest_parts import Peer, frame_payload

pytestmark = pytest.mark.integration


@pytest.fixture
def amqtt_broker(tmp_path):
    from pipelines.broker import Broker

    (tmp_path / "amqtt").mkdir()
    broker = Broker(kind="amqtt", workdir=tmp_path / "amqtt").start()
    yield broker
    broker.stop()


def test_plain_subscription_on_amqtt_stores_and_acks(amqtt_broker, tmp_path, make_ingest):  # noqa: F811
    config = IngestConfig(broker=BrokerConfig(host=amqtt_broker.host, port=amqtt_broker.port), shared_group=None,
                          ack_flush_interval_s=0.02)
    store = LocalStore(tmp_path / "store")
    ingest = make_ingest(config, store)
    assert ingest.topic_filter == "edgeloop/v1/+/frame"
    peer = Peer(amqtt_broker)
    try:
        for i in range(3):
            peer.publish("cam-a", frame_payload("cam-a", f"f{i}"))
        assert ingest.wait_for(3, timeout_s=15), ingest.stats()
        assert peer.wait_acked(3)
    finally:
        peer.close()
    assert sorted(peer.acked_ids()) == ["f0", "f1", "f2"]
    assert FrameIndex(store).frame_ids("cam-a", 0) == ["f0", "f1", "f2"]


def test_shared_group_none_and_empty_both_subscribe_plainly():
    for group in (None, ""):
        assert IngestConfig(shared_group=group).shared_group in (None, "")
    assert IngestConfig().shared_group == "ingest"  # the default still splits frames across instances
