"""A real endpoint process over a real broker refuses corrupted, truncated and unsigned models and keeps detecting."""

from __future__ import annotations

import hashlib
import queue
import subprocess
import sys
import time

import pytest
import yaml

from edge.mqtt_connection import MqttConnection
from edge.publisher import ModelPublisher
from edge.signing import generate_keypair, load_private_key, sign
from endpoint import protocol
from endpoint.model_manifest import Manifest

pytestmark = pytest.mark.integration


def manifest_for(model: bytes, version: str) -> Manifest:
    return Manifest(name="student", version=version, parent_version="v0001", format="onnx-fp32",
                    sha256=hashlib.sha256(model).hexdigest(), size_bytes=len(model), input_size=(128, 128),
                    class_names=["person", "car", "bicycle"], metrics={}, created=time.time())


class EdgeSide:
    """The edge's view: acks and telemetry of one endpoint, and a publisher of model pushes."""

    def __init__(self, port: int):
        self.acks: queue.Queue[protocol.Ack] = queue.Queue()
        self.telemetry: list[protocol.Telemetry] = []
        self.mqtt = MqttConnection("127.0.0.1", port, client_id="test-edge")
        self.mqtt.subscribe(protocol.topic("cam-1", protocol.FEATURE_ACK), self._on_ack)
        self.mqtt.subscribe(protocol.topic("cam-1", protocol.FEATURE_TELEMETRY), self._on_telemetry, qos=0)
        self.mqtt.start()
        self.publisher = ModelPublisher(self.mqtt)

    def _on_ack(self, topic, payload):
        ack = protocol.decode(payload)
        if ack.model_version and not ack.frame_ids:
            self.acks.put(ack)

    def _on_telemetry(self, topic, payload):
        self.telemetry.append(protocol.decode(payload))

    def frames_seen(self) -> int:
        return self.telemetry[-1].frames_seen if self.telemetry else 0

    def wait_frames(self, more_than: int, timeout_s: float = 30) -> int:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.frames_seen() <= more_than:
            time.sleep(0.2)
        return self.frames_seen()


def test_bad_pushes_are_refused_by_a_running_endpoint_that_keeps_detecting(tmp_path, broker, tiny_yolo_onnx):
    private_path, public_path = generate_keypair(tmp_path / "keys")
    key = load_private_key(private_path)
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    (models_dir / "v0001.onnx").write_bytes(tiny_yolo_onnx.read_bytes())
    config = tmp_path / "endpoint.yaml"
    config.write_text(yaml.safe_dump({
        "endpoint_id": "cam-1", "broker": {"port": broker.port},
        "source": {"kind": "scenario", "fps": 20.0},
        "sampler": {"name": "uniform", "sample_rate": 0.0},
        "uplink": {"spool_dir": str(tmp_path / "spool")},
        "model": {"path": str(models_dir / "v0001.onnx"), "version": "v0001", "models_dir": str(models_dir),
                  "public_key": str(public_path)},
        "telemetry_interval_s": 0.3}))
    edge = EdgeSide(broker.port)
    log = open(tmp_path / "endpoint.log", "wb")
    endpoint = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "endpoint", "--config", str(config)],
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        seen = edge.wait_frames(0)
        assert seen > 0, (tmp_path / "endpoint.log").read_text()[-2000:]
        good = tiny_yolo_onnx.read_bytes()
        manifest = manifest_for(good, "v0002")
        bad_pushes = {
            "corrupted": (manifest, sign(manifest, key), good[:5000] + bytes([good[5000] ^ 0xFF]) + good[5001:]),
            "truncated": (manifest, sign(manifest, key), good[:-4096]),
            "unsigned": (manifest, "", good),
        }
        for case, (m, signature, model) in bad_pushes.items():
            edge.publisher.push("cam-1", m, signature, model)
            ack = edge.acks.get(timeout=30)
            assert (ack.ok, ack.model_version) == (False, "v0002"), case
            assert case in ack.reason, (case, ack.reason)
            # still detecting with the old model: frames keep flowing through the detector
            seen = edge.wait_frames(seen + 5)
            assert edge.telemetry[-1].model_version == "v0001" and edge.telemetry[-1].inference_ms > 0, case

        edge.publisher.push("cam-1", manifest, sign(manifest, key), good)
        ack = edge.acks.get(timeout=30)
        assert ack.ok and ack.model_version == "v0002"
        edge.wait_frames(edge.frames_seen() + 5)
        assert edge.telemetry[-1].model_version == "v0002"
        assert endpoint.poll() is None
    finally:
        endpoint.terminate()
        endpoint.wait(timeout=30)
        edge.mqtt.stop()
