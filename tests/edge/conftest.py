"""Fixtures of the edge tests: an endpoint-playing MQTT peer and ingests stopped after each test."""

from __future__ import annotations

import pytest

from edge.ingest import Ingest
from edge.ingest_config import IngestConfig
from tests.edge.ingest_parts import Peer


@pytest.fixture
def peer(broker):
    p = Peer(broker)
    yield p
    p.close()


@pytest.fixture
def make_ingest():
    started: list[Ingest] = []

    def make(config: IngestConfig, store) -> Ingest:
        ingest = Ingest(config, store).start(timeout_s=10)
        started.append(ingest)
        return ingest

    yield make
    for ingest in started:
        ingest.stop()
