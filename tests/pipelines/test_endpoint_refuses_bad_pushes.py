"""A real endpoint process over a real broker refuses corrupted, truncated, unsigned, replayed and re-addressed
models and keeps detecting."""

from __future__ import annotations

import pytest

from edge.publisher import ModelPublisher
from edge.signing import generate_keypair, load_private_key, sign
from tests.pipelines.endpoint_process import (EdgeSide, manifest_for, start_endpoint, stop_endpoint,
                                              write_endpoint_config)

pytestmark = pytest.mark.integration


def test_bad_pushes_are_refused_by_a_running_endpoint_that_keeps_detecting(tmp_path, broker, tiny_yolo_onnx):
    private_path, public_path = generate_keypair(tmp_path / "keys")
    key = load_private_key(private_path)
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    (models_dir / "v0001.onnx").write_bytes(tiny_yolo_onnx.read_bytes())
    config = write_endpoint_config(tmp_path, broker.port, models_dir, public_path)
    edge = EdgeSide(broker.port)
    endpoint = start_endpoint(config, tmp_path / "endpoint.log")
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

        captured: list[tuple[str, bytes]] = []  # what an attacker on the wire records
        ModelPublisher(lambda topic, payload: captured.append((topic, payload))).push(
            "cam-1", manifest, sign(manifest, key), good)
        for topic, payload in captured:
            edge.mqtt.publish(topic, payload, qos=1)
        ack = edge.acks.get(timeout=30)
        assert ack.ok and ack.model_version == "v0002"
        edge.wait_frames(edge.frames_seen() + 5)
        assert edge.telemetry[-1].model_version == "v0002"

        newer = manifest_for(good, "v0003")
        edge.publisher.push("cam-1", newer, sign(newer, key), good)
        ack = edge.acks.get(timeout=30)
        assert (ack.ok, ack.model_version) == (True, "v0003")
        for topic, payload in captured:  # replay the captured, validly signed v0002 push
            edge.mqtt.publish(topic, payload, qos=1)
        ack = edge.acks.get(timeout=30)
        assert (ack.ok, ack.model_version) == (False, "v0002") and ack.reason.startswith("not newer"), ack.reason
        for_cam2 = manifest_for(good, "v0004", target="cam-2")  # signed for cam-2, re-addressed to cam-1
        edge.publisher.push("cam-1", for_cam2, sign(for_cam2, key), good)
        ack = edge.acks.get(timeout=30)
        assert (ack.ok, ack.model_version) == (False, "v0004") and ack.reason.startswith("wrong target"), ack.reason
        edge.wait_frames(edge.frames_seen() + 5)
        assert edge.telemetry[-1].model_version == "v0003"
        assert endpoint.poll() is None
    finally:
        stop_endpoint(endpoint)
        edge.mqtt.stop()
