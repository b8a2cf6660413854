"""A real endpoint process and the edge's view of it over a real broker, for the model-push tests."""

from __future__ import annotations

import hashlib
import queue
import subprocess
import sys
import time
from pathlib import Path

import yaml

from edge.mqtt_connection import MqttConnection
from edge.publisher import ModelPublisher
from endpoint.wire import protocol
from endpoint.wire.manifest import Manifest


def manifest_for(model: bytes, version: str, target: str = "cam-1") -> Manifest:
    """A manifest whose serial is its version number."""
    return Manifest(name="student", version=version, parent_version="v0001", format="onnx-fp32",
                    target=target, serial=int(version[1:]),
                    sha256=hashlib.sha256(model).hexdigest(), size_bytes=len(model), input_size=(128, 128),
                    class_names=["person", "car", "bicycle"], metrics={}, created=time.time())


def write_endpoint_config(tmp_path: Path, broker_port: int, models_dir: Path, public_path: Path) -> Path:
    """cam-1 detecting a scenario stream with v0001 from ``models_dir``, sampling nothing, telemetry every 0.3 s."""
    config = tmp_path / "endpoint.yaml"
    config.write_text(yaml.safe_dump({
        "endpoint_id": "cam-1", "broker": {"port": broker_port},
        "source": {"kind": "scenario", "fps": 20.0},
        "sampler": {"name": "uniform", "sample_rate": 0.0},
        "uplink": {"spool_dir": str(tmp_path / "spool")},
        "model": {"path": str(models_dir / "v0001.onnx"), "version": "v0001", "models_dir": str(models_dir),
                  "public_key": str(public_path)},
        "telemetry_interval_s": 0.3}))
    return config


def start_endpoint(config: Path, log_path: Path) -> subprocess.Popen:
    """``edgeloop endpoint --config`` as its own process; stdout and stderr go to ``log_path``."""
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "pipelines.cli", "endpoint", "--config", str(config)],
                                stdout=log, stderr=subprocess.STDOUT)


class EdgeSide:
    """The edge's view: acks, telemetry and status of one endpoint, and a publisher of model pushes."""

    def __init__(self, port: int):
        self.acks: queue.Queue[protocol.Ack] = queue.Queue()
        self.telemetry: list[protocol.Telemetry] = []
        self.statuses: list[protocol.Status] = []
        self.mqtt = MqttConnection("127.0.0.1", port, client_id="test-edge")
        self.mqtt.subscribe(protocol.topic("cam-1", protocol.FEATURE_ACK), self._on_ack)
        self.mqtt.subscribe(protocol.topic("cam-1", protocol.FEATURE_TELEMETRY), self._on_telemetry, qos=0)
        self.mqtt.subscribe(protocol.topic("cam-1", protocol.FEATURE_STATUS), self._on_status)
        self.mqtt.start()
        self.publisher = ModelPublisher(self.mqtt)

    def _on_ack(self, topic, payload):
        ack = protocol.decode(payload)
        if ack.model_version and not ack.frame_ids:
            self.acks.put(ack)

    def _on_telemetry(self, topic, payload):
        self.telemetry.append(protocol.decode(payload))

    def _on_status(self, topic, payload):
        self.statuses.append(protocol.decode(payload))

    def frames_seen(self) -> int:
        return self.telemetry[-1].frames_seen if self.telemetry else 0

    def wait_frames(self, more_than: int, timeout_s: float = 30) -> int:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.frames_seen() <= more_than:
            time.sleep(0.2)
        return self.frames_seen()

    def wait_status(self, state: str, since: float, timeout_s: float = 30) -> protocol.Status | None:
        """The first status in ``state`` stamped after ``since`` (unix seconds)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for status in list(self.statuses):
                if status.state == state and status.time > since:
                    return status
            time.sleep(0.1)
        return None


def stop_endpoint(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(timeout=30)
