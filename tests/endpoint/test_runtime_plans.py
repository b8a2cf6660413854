"""A real endpoint process follows the edge's plans: domain and frames per round, the round's byte cap, and a plan its
source cannot play (it ends that round, not the process)."""

import os
import queue
import subprocess
import sys
import time

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from edge.frame_index import FrameIndex
from edge.ingest import Ingest
from edge.ingest_config import IngestConfig
from edge.store.local import LocalStore
from endpoint.wire import protocol
from endpoint.wire.broker_config import BrokerConfig
from endpoint.wire.protocol import Plan, Telemetry

pytestmark = pytest.mark.integration


def _client(port):
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-edge", protocol=mqtt.MQTTv311)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def test_endpoint_streams_each_plans_domain_and_keeps_its_byte_cap(tmp_path, broker):
    store = LocalStore(tmp_path / "store")
    # one ingest: a plain subscription, which every broker has (amqtt has no shared subscriptions)
    ingest = Ingest(IngestConfig(broker=BrokerConfig(port=broker.port), shared_group=""), store).start()
    telemetry: queue.Queue[Telemetry] = queue.Queue()
    edge = _client(broker.port)
    edge.on_message = lambda c, u, m: telemetry.put(protocol.decode(m.payload))
    edge.subscribe(protocol.topic("cam-3", "telemetry"), qos=1)
    config = {"endpoint_id": "cam-3", "broker": {"port": broker.port},
              "source": {"kind": "scenario", "follow_plan": True, "width": 160, "height": 120},
              "sampler": {"name": "uniform", "sample_rate": 1.0},
              "uplink": {"spool_dir": str(tmp_path / "spool")}, "telemetry_interval_s": 0.5}
    (tmp_path / "ep.yaml").write_text(yaml.safe_dump(config))
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "endpoint", "--config", str(tmp_path / "ep.yaml")],
                            stdout=open(tmp_path / "ep.log", "wb"), stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def run_round(plan: Plan) -> Telemetry:
        edge.publish(protocol.topic("cam-3", "plan"), protocol.encode(plan), qos=1, retain=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "ep.log").read_text()[-2000:]
            try:
                t = telemetry.get(timeout=0.5)
            except queue.Empty:
                continue
            if t.round == plan.round and t.round_done:
                return t
        raise AssertionError(f"round {plan.round} never finished")

    try:
        day = run_round(Plan(endpoint_id="cam-3", round=0, upload_budget_bytes=10**9, upload_rate_bytes_per_s=1e7,
                             domain="day", frames=12))
        # a domain this endpoint's source does not have: the round ends with nothing, the endpoint serves on
        unknown = run_round(Plan(endpoint_id="cam-3", round=1, upload_budget_bytes=10**9,
                                 upload_rate_bytes_per_s=1e7, domain="no-such-domain", frames=12))
        budget = 40_000
        dusk = run_round(Plan(endpoint_id="cam-3", round=2, upload_budget_bytes=budget,
                              upload_rate_bytes_per_s=1e7, domain="dusk", frames=20))
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        edge.loop_stop()
        ingest.stop()

    index = FrameIndex(store)
    assert day.round_frames_sampled == 12 and index.count("cam-3", 0) == 12
    assert {r.domain for r in index.frames("cam-3", 0)} == {"day"}
    assert unknown.round_frames_sampled == 0 and index.count("cam-3", 1) == 0
    assert "round 1: streaming domain 'no-such-domain' failed" in (tmp_path / "ep.log").read_text()
    dusk_frames = index.frames("cam-3", 2)
    assert len(dusk_frames) == dusk.round_frames_sampled
    assert 0 < len(dusk_frames) < 20  # the byte cap stopped sampling early
    assert {r.domain for r in dusk_frames} == {"dusk"}
    assert sum(r.jpeg_bytes for r in dusk_frames) <= budget
