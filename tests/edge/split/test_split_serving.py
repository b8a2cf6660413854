"""Co-inference end to end over a real Mosquitto: endpoint head + codec → MQTT → edge tail → detections back."""

import dataclasses
import time

import numpy as np
import pytest

from edge.split.selection import SplitOption, save_options
from edge.split.server import ControllerSettings, SplitServer
from edge.split.split_set import pair_of
from edge.split.tail_runner import SplitTailRunner, detect_jpeg
from endpoint.model.detector import OnnxDetector
from endpoint.model.letterbox import frame_to_jpeg
from endpoint.model.split_halves import SplitHeadRunner
from endpoint.sources.scenario import SyntheticScenario
from endpoint.split.client import SplitClient
from endpoint.uplink.link import MqttLink
from endpoint.wire.feature_codec import CodecSpec, decode_tensors, encode_tensors
from endpoint.wire.split_protocol import FEATURE_SPLIT_REQUEST

pytestmark = pytest.mark.integration


def _same(got, expected, atol=1e-2):
    assert got is not None, "no answer from the edge"
    assert len(got) == len(expected)
    np.testing.assert_allclose(got.xyxy, expected.xyxy, atol=atol)  # boxes travel normalized as JSON floats
    np.testing.assert_allclose(got.confidence, expected.confidence, atol=1e-5)
    np.testing.assert_array_equal(got.class_id, expected.class_id)


def test_endpoint_and_edge_exchange_frames_and_agree_with_local_inference(broker, split_set):
    folder, manifest = split_set
    server = SplitServer(folder, broker.host, broker.port, threads=1).start()
    link = MqttLink("cam-split", broker.host, broker.port)
    client = SplitClient(link, "cam-split", folder, "after6", "fp32", timeout_s=5.0)
    link.start()
    try:
        assert link.connected.wait(10) and link.subscribed.wait(10)  # results reach us only once subscribed
        pair = pair_of(manifest, folder, "after6")
        head, tail = SplitHeadRunner(pair.head_path, 1), SplitTailRunner(pair.tail_path, 1)
        whole = OnnxDetector(folder / manifest.full_onnx, threads=1)
        frames = [SyntheticScenario().frame("day", 100_000 + i).image for i in range(3)]
        seen = 0
        for image in frames:  # FP32 features: exactly the local head + tail
            feats, geo = head.run(image)
            expected = tail.detect(feats, geo.source_hw, 0.25)
            outcome = client.infer(image)
            _same(outcome.detections, expected)
            assert outcome.request_bytes > sum(f.nbytes for f in feats)  # header + raw float32
            seen += len(expected)
        assert seen > 0

        client.select("after6", "q8c-zlib")  # compressed: the tail sees what the codec gives back
        image = frames[0]
        feats, geo = head.run(image)
        expected = tail.detect(decode_tensors(encode_tensors(feats, CodecSpec.parse("q8c-zlib"))), geo.source_hw, 0.25)
        outcome = client.infer(image)
        _same(outcome.detections, expected)
        assert outcome.request_bytes < sum(f.nbytes for f in feats) / 3

        client.select("edge", "")  # edge-only: the JPEG the endpoint sends, the whole model on the edge
        expected = detect_jpeg(whole, frame_to_jpeg(image, whole.input_size, 85), image.shape[:2])
        outcome = client.infer(image)
        _same(outcome.detections, expected)

        # a malformed request and a head the edge does not know: answered or dropped, the server keeps serving
        link.publish(FEATURE_SPLIT_REQUEST, b"ELS1garbage", qos=0)
        client.select("after4", "q8c-zlib")
        head4 = client.head("after4")
        head4.meta = dataclasses.replace(head4.meta, pair_id="feedbeef")
        outcome = client.infer(image)
        assert outcome.detections is None and "unknown pair" in outcome.reason
        client.select("after6", "fp32")
        assert client.infer(image).detections is not None
        assert server.served >= 6 and server.failed >= 1 and server.refused >= 1  # unknown pair; garbage
    finally:
        link.stop()
        server.stop()


def test_edge_controller_moves_the_endpoint_when_bandwidth_changes(broker, split_set, tmp_path):
    folder, _ = split_set
    device = SplitOption("device", "", 22, 40.0, 0.0, 0, 0, 0.5, 0.3)
    late = SplitOption("after6", "q8c-zlib", 6, 10.0, 20.0, 3000, 200, 0.5, 0.3)
    options = save_options([device, late], tmp_path / "options.json")
    server = SplitServer(folder, broker.host, broker.port, threads=1, options_path=options,
                         controller=ControllerSettings(device_speed_factor=0.2, edge_speed_factor=1.0,
                                                       accuracy_floor=0.0, rtt_ms=0.0)).start()
    link = MqttLink("cam-ctl", broker.host, broker.port)
    client = SplitClient(link, "cam-ctl", folder, "after6", "q8c-zlib", timeout_s=5.0)
    link.start()
    try:
        assert link.connected.wait(10) and link.subscribed.wait(10)
        image = SyntheticScenario().frame("day", 7).image
        # as if the last round trips crawled (3 kB takes 3 s); the request carries this estimate, and the edge's
        # controller decides on that one request: the estimate this round trip updates afterwards is not sent
        client.bandwidth_bytes_per_s = 1_000.0
        assert client.infer(image).detections is not None
        deadline = time.monotonic() + 5
        while client.split_key != "device" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.split_key == "device" and client.switches == 1
    finally:
        link.stop()
        server.stop()


def test_edgeloop_endpoint_mode_split_streams_a_source_through_the_edge(broker, split_set, tmp_path):
    import json

    import yaml

    from pipelines.cli import main

    folder, _ = split_set
    config = {"endpoint_id": "cam-cli", "broker": {"host": broker.host, "port": broker.port},
              "source": {"kind": "scenario", "domain": "day", "max_frames": 4},
              "split": {"set_dir": str(folder), "split_key": "after4", "codec": "q8c-zlib", "timeout_s": 5.0},
              "summary_path": str(tmp_path / "summary.json")}
    (tmp_path / "split.yaml").write_text(yaml.safe_dump(config))
    server = SplitServer(folder, broker.host, broker.port, threads=1).start()
    try:
        assert main(["endpoint", "--config", str(tmp_path / "split.yaml"), "--mode", "split"]) == 0
    finally:
        server.stop()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["frames"] == 4 and summary["answered"] == 4 and summary["lost"] == 0
    assert 0 < summary["mean_request_bytes"] < 32 * 16 * 16 * 4  # compressed below the raw float32 features


class _SilentLink:
    def __init__(self):
        self.handlers, self.sent = {}, []

    def on(self, feature, handler):
        self.handlers[feature] = handler

    def publish(self, feature, payload, qos=1, retain=False):
        self.sent.append((feature, payload))


def test_device_only_runs_locally_and_an_unanswered_request_times_out(split_set):
    folder, manifest = split_set
    link = _SilentLink()
    client = SplitClient(link, "cam-solo", folder, "device", "", timeout_s=0.2)
    image = SyntheticScenario().frame("day", 100_001).image
    expected = OnnxDetector(folder / manifest.full_onnx, conf_threshold=0.25, threads=1).detect(image)
    outcome = client.infer(image)
    _same(outcome.detections, expected, atol=1e-4)
    assert outcome.request_bytes == 0 and not link.sent
    client.select("after4", "q8c-zlib")
    outcome = client.infer(image)  # nobody answers: a stale frame is given up, not retried
    assert outcome.detections is None and outcome.reason == "timeout" and len(link.sent) == 1
