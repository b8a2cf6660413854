"""Endpoint process → Mosquitto → ingest → SeaweedFS S3, with the broker killed and restarted mid-stream."""

import os
import subprocess
import sys
import time
import json
from pathlib import Path

import pytest
import yaml

from edge.frame_index import FrameIndex
from edge.ingest import Ingest
from edge.ingest_config import IngestConfig
from endpoint.wire.broker_config import BrokerConfig
from edge.store import StoreConfig

pytestmark = pytest.mark.integration

N_FRAMES = 220


def _endpoint_config(tmp_path: Path, broker_port: int, **over) -> Path:
    config = {
        "endpoint_id": "cam-7",
        "broker": {"host": "127.0.0.1", "port": broker_port},
        "source": {"kind": "scenario", "domain": "day", "max_frames": N_FRAMES, "fps": 40, "width": 192,
                   "height": 144},
        "sampler": {"name": "uniform", "sample_rate": 1.0},
        "uplink": {"spool_dir": str(tmp_path / "spool"), "ack_timeout_s": 3.0, "rate_bytes_per_s": 5_000_000,
                   "burst_bytes": 1_000_000},
        "telemetry_interval_s": 1.0,
        "exit_when_drained": True,
        "drain_timeout_s": 90,
        "summary_path": str(tmp_path / "summary.json"),
    }
    config.update(over)
    path = tmp_path / "endpoint.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _start_endpoint(config_path: Path, log_path: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "pipelines.cli", "endpoint", "--config", str(config_path)],
                            stdout=open(log_path, "wb"), stderr=subprocess.STDOUT, env=env)


def test_every_sampled_frame_is_stored_exactly_once_across_a_broker_restart(tmp_path, broker, s3_server,
                                                                            tiny_yolo_onnx):
    bucket = "datapath"
    store_config = StoreConfig(kind="s3", endpoint=s3_server.endpoint, bucket=bucket,
                               access_key=s3_server.access_key, secret_key=s3_server.secret_key)
    # one ingest: a plain subscription, which every broker has (amqtt has no shared subscriptions)
    ingest = Ingest(IngestConfig(broker=BrokerConfig(port=broker.port), shared_group="", store=store_config)).start()
    detector = {"path": str(tiny_yolo_onnx), "version": "v0001"}  # a detecting endpoint, as in the field
    proc = _start_endpoint(_endpoint_config(tmp_path, broker.port, model=detector), tmp_path / "endpoint.log")
    try:
        deadline = time.monotonic() + 60
        while not ingest.wait_for(50, timeout_s=0.5):
            assert proc.poll() is None, (tmp_path / "endpoint.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "ingest stored too few frames before the outage"
        broker.stop(kill=True)  # SIGKILL: no goodbye, in-flight messages die with it
        time.sleep(2.0)
        broker.start()
        assert proc.wait(timeout=180) == 0, (tmp_path / "endpoint.log").read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
        ingest.stop()

    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["frames_seen"] == N_FRAMES
    assert summary["spool_depth"] == 0
    assert summary["inference_ms_total"] > 0  # the model ran on every frame, the outage notwithstanding
    assert summary["frames_acked"] == N_FRAMES  # the endpoint counted each frame's ack once
    sampled = summary["sampled_ids"]
    assert len(sampled) == N_FRAMES and len(set(sampled)) == N_FRAMES

    index = FrameIndex(ingest.store)
    stored = index.frame_ids("cam-7", 0)
    assert sorted(stored) == sorted(sampled)  # every sampled frame, none twice, nothing else
    keys = list(ingest.store.list("frames/cam-7/"))
    assert len(keys) == 2 * N_FRAMES  # one JPEG and one metadata object each
    assert ingest.stats().stored == N_FRAMES  # each written once: re-sends after the outage were duplicates
    log_text = (tmp_path / "endpoint.log").read_text()
    assert "lost the broker" in log_text  # the outage really happened to the endpoint
