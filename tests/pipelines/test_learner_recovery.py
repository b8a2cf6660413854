"""The edge service's learner killed with SIGKILL during distillation, then started again, finishes the round.

Real parts: Mosquitto, `edgeloop edge` (ingest and learner in one process, as compose runs it) killed
and restarted, and an `edgeloop endpoint` process that starts with no model.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest
import yaml

from edge.frame_index import FrameIndex
from edge.store.local import LocalStore
from endpoint.wire import protocol
from pipelines.ports import free_port

pytestmark = [pytest.mark.slow, pytest.mark.integration]


class AckRecorder:
    """Every ack on the broker: the edge's frame acks and the endpoint's model acks."""

    def __init__(self, port: int):
        from edge.mqtt_connection import MqttConnection

        self.frame_ids: set[str] = set()
        self.model_acks: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.mqtt = MqttConnection("127.0.0.1", port, client_id="test-ack-recorder")
        self.mqtt.subscribe(protocol.topic("+", protocol.FEATURE_ACK), self._on_ack, qos=1)
        self.mqtt.start()

    def _on_ack(self, topic: str, payload: bytes) -> None:
        ack = protocol.decode(payload)
        with self._lock:
            if ack.frame_ids and ack.ok:
                self.frame_ids.update(ack.frame_ids)
            elif ack.model_version and ack.ok:
                self.model_acks[ack.model_version] += 1


def test_learner_killed_during_distillation_resumes_the_round(tmp_path, broker, tiny_yolo_pt):
    store_dir, state_dir = tmp_path / "store", tmp_path / "learner"
    edge_yaml = tmp_path / "edge.yaml"
    broker_fields = {"broker": {"host": "127.0.0.1", "port": broker.port}}
    edge_yaml.write_text(yaml.safe_dump({
        "roles": ["ingest", "learner"],
        # compose's shared subscription where the broker has them; amqtt (no Mosquitto here) has none
        "ingest": {**broker_fields, "store": {"kind": "local", "path": str(store_dir)},
                   "shared_group": None if broker.kind == "amqtt" else "ingest"},
        "learner": {
            **broker_fields, "store": {"kind": "local", "path": str(store_dir)}, "state_dir": str(state_dir),
            "public_key_dir": str(tmp_path / "keys"), "rounds": 1, "round_s": 60, "min_frames": 16,
            "policy": "model-first", "budget_kbps": 8000, "labels": ["teacher"], "push_timeout_s": 30,
            "push_regressions": True,  # 2 epochs may score below the start; this test is about the resumed push
            "bootstrap": {"synthetic_domain": "day", "seed": 1000, "frames": 32},
            "endpoints": [{"id": "cam-1", "val": {"synthetic_domain": "dusk", "seed": 1, "frames": 12}}],
            "learning": {"imgsz": 128, "batch": 16, "finetune": {"epochs": 2}, "distill": {"epochs": 6},
                         "calibration_frames": 8, "cache_dir": str(tmp_path / "cache"),
                         # the day-trained tiny teacher is unsure on dusk: at the default 0.4 it may label no
                         # frame, and a round with no labelled frame never reaches distillation
                         "teacher_label_conf": 0.05,
                         "teacher": {"weights": str(tiny_yolo_pt)}, "student": {"weights": str(tiny_yolo_pt)}}}}))
    endpoint_yaml = tmp_path / "endpoint.yaml"
    endpoint_yaml.write_text(yaml.safe_dump({
        "endpoint_id": "cam-1", "broker": {"port": broker.port},
        "source": {"kind": "scenario", "domain": "dusk", "seed": 1, "fps": 8},
        "sampler": {"name": "uniform", "sample_rate": 0.5, "seed": 1},
        "uplink": {"spool_dir": str(tmp_path / "cam-1" / "spool"), "ack_timeout_s": 5.0},
        "model": {"path": "", "models_dir": str(tmp_path / "cam-1" / "models"),
                  "public_key": str(tmp_path / "keys" / "model_signing.pub")},
        "telemetry_interval_s": 1.0}))
    acks = AckRecorder(broker.port)
    edge_cmd = [sys.executable, "-m", "pipelines.cli", "edge", "--config", str(edge_yaml)]
    endpoint = edge = None
    logs = {name: tmp_path / f"{name}.log" for name in ("edge-1", "edge-2", "endpoint")}
    try:
        edge = subprocess.Popen(edge_cmd, stdout=open(logs["edge-1"], "wb"), stderr=subprocess.STDOUT)
        _wait(lambda: (tmp_path / "keys" / "model_signing.pub").exists(), 300, edge, logs)
        endpoint = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "endpoint", "--config",
                                     str(endpoint_yaml)], stdout=open(logs["endpoint"], "wb"),
                                    stderr=subprocess.STDOUT)
        # distillation starts as soon as the state says the teacher stage is done (it runs for many seconds)
        _wait(lambda: _stage(state_dir) == "teacher", 300, edge, logs)
        os.kill(edge.pid, signal.SIGKILL)
        edge.wait()
        edge = subprocess.Popen(edge_cmd, stdout=open(logs["edge-2"], "wb"), stderr=subprocess.STDOUT)
        _wait(lambda: (state_dir / "rounds.jsonl").exists(), 300, edge, logs)
        time.sleep(3)  # a second push, were there one, would be acked by now
    finally:
        for process in (endpoint, edge):
            if process is not None:
                process.terminate()
                process.wait(timeout=30)
        acks.mqtt.stop()

    restarted = logs["edge-2"].read_text()
    assert "resuming round 0 after stage teacher" in restarted, restarted[-3000:]
    # no ground truth: the resumed student stage labels the frames afresh with the saved, fine-tuned teacher
    assert "round 0: the fine-tuned teacher labelled" in restarted, restarted[-3000:]
    [result] = [json.loads(line) for line in (state_dir / "rounds.jsonl").read_text().splitlines()]
    assert result["model_version"] == "v0002" and result["push_kind"] in ("full", "delta")
    versions = sorted(p.name for p in (store_dir / "models" / "student").iterdir())
    assert versions == ["v0001", "v0002"]  # consecutive: none skipped, none used twice
    assert acks.model_acks == Counter({"v0001": 1, "v0002": 1}), acks.model_acks  # each version acked once
    index = FrameIndex(LocalStore(store_dir))
    stored = {f for r in index.rounds("cam-1") for f in index.frame_ids("cam-1", r)}
    assert len(acks.frame_ids) >= 16 and acks.frame_ids <= stored  # every frame the edge acked is in the store


def _stage(state_dir) -> str | None:
    try:
        progress = json.loads((state_dir / "state.json").read_text())["progress"]
    except (OSError, ValueError, KeyError):
        return None
    return progress and progress["stage"]


def _tail(logs) -> str:
    return "\n".join(f"--- {n}\n{p.read_text(errors='replace')[-2500:]}" for n, p in logs.items() if p.exists())


def _wait(predicate, timeout_s: float, process, logs) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert process.poll() is None, f"edge exited with {process.returncode}\n{_tail(logs)}"
        assert time.monotonic() < deadline, _tail(logs)
        time.sleep(0.2)
