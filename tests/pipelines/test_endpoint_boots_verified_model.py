"""A real endpoint process keeps the model it verified across restarts, and falls back when it was tampered with."""

from __future__ import annotations

import queue
import time

import pytest

from edge.mqtt_connection import MqttConnection
from edge.signing import generate_keypair, load_private_key, sign
from endpoint.wire import protocol
from tests.pipelines.endpoint_process import (EdgeSide, manifest_for, start_endpoint, stop_endpoint,
                                              write_endpoint_config)

pytestmark = pytest.mark.integration

REASON = ("stored model v0002 fails its check: corrupted: sha256 does not match the manifest; "
          "booting the configured model v0001")


def retained_status(port: int) -> protocol.Status:
    """What a newcomer (the edge after its own restart) reads from the broker."""
    got: queue.Queue[protocol.Status] = queue.Queue()
    reader = MqttConnection("127.0.0.1", port, client_id="status-reader")
    reader.subscribe(protocol.topic("cam-1", protocol.FEATURE_STATUS), lambda t, p: got.put(protocol.decode(p)))
    reader.start()
    try:
        return got.get(timeout=10)
    finally:
        reader.stop()


def _boot(edge: EdgeSide, config, log_path):
    """Start the endpoint; return it once it reports itself online and detects frames."""
    since = time.time()
    process = start_endpoint(config, log_path)
    status = edge.wait_status("online", since)
    assert status is not None, log_path.read_text()[-3000:]
    edge.telemetry.clear()
    assert edge.wait_frames(3) > 3, log_path.read_text()[-3000:]
    return process, status


def test_a_restarted_endpoint_runs_the_model_it_verified_unless_it_was_tampered_with(tmp_path, broker,
                                                                                     tiny_yolo_onnx):
    private_path, public_path = generate_keypair(tmp_path / "keys")
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    (models_dir / "v0001.onnx").write_bytes(tiny_yolo_onnx.read_bytes())
    config = write_endpoint_config(tmp_path, broker.port, models_dir, public_path)
    log_path = tmp_path / "endpoint.log"
    edge = EdgeSide(broker.port)
    endpoint = None
    try:
        endpoint, status = _boot(edge, config, log_path)
        assert status.model_version == "v0001"
        good = tiny_yolo_onnx.read_bytes()
        manifest = manifest_for(good, "v0002")
        pushed_at = time.time()
        edge.publisher.push("cam-1", manifest, sign(manifest, load_private_key(private_path)), good)
        ack = edge.acks.get(timeout=30)
        assert (ack.ok, ack.model_version) == (True, "v0002"), ack.reason
        assert retained_status(broker.port).model_version == "v0002"  # refreshed by the swap itself
        assert edge.wait_status("online", pushed_at).model_version == "v0002"
        stop_endpoint(endpoint)

        endpoint, status = _boot(edge, config, log_path)  # same config: model.path is still v0001
        assert status.model_version == "v0002"
        assert (retained_status(broker.port).state, retained_status(broker.port).model_version) == ("online", "v0002")
        assert edge.telemetry[-1].model_version == "v0002" and edge.telemetry[-1].inference_ms > 0
        stop_endpoint(endpoint)

        stored = models_dir / "v0002.onnx"
        data = bytearray(stored.read_bytes())
        data[len(data) // 2] ^= 0x01
        stored.write_bytes(bytes(data))
        endpoint, status = _boot(edge, config, log_path)
        assert status.model_version == "v0001"
        assert edge.telemetry[-1].model_version == "v0001" and edge.telemetry[-1].inference_ms > 0
        assert REASON in log_path.read_text()
        assert endpoint.poll() is None
    finally:
        if endpoint is not None and endpoint.poll() is None:
            stop_endpoint(endpoint)
        edge.mqtt.stop()
