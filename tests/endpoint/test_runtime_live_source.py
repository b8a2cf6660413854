"""A live camera that outruns the detector: the runtime drops its oldest frames and reports how many."""

import json
import queue
import threading

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from endpoint.wire import protocol

from endpoint import runtime as runtime_module
from endpoint.config import EndpointConfig
from endpoint.runtime import EndpointRuntime
from endpoint.sources.streams import SourceFrame
from pipelines.ports import free_port

pytestmark = pytest.mark.integration

N_FRAMES = 20


def test_a_live_camera_drops_its_oldest_frames_and_telemetry_summary_and_metrics_count_them(tmp_path, broker,
                                                                                            monkeypatch):
    in_detector, exhausted = threading.Event(), threading.Event()

    def fake_camera(config):
        assert config.kind == "camera"
        for i in range(N_FRAMES):
            yield SourceFrame(np.full((48, 64, 3), i, np.uint8), 1_795_000_000.0 + i)
            if i == 0:
                assert in_detector.wait(10)  # the first frame is in the detector before the camera runs on
        exhausted.set()

    monkeypatch.setattr(runtime_module, "open_source", fake_camera)
    telemetry: queue.Queue = queue.Queue()
    edge = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-edge", protocol=mqtt.MQTTv311)
    edge.on_message = lambda c, u, m: telemetry.put(protocol.decode(m.payload))
    edge.connect("127.0.0.1", broker.port)
    edge.subscribe(protocol.topic("cam-live", protocol.FEATURE_TELEMETRY), qos=1)
    edge.loop_start()
    config = EndpointConfig.model_validate({
        "endpoint_id": "cam-live", "broker": {"port": broker.port},
        "source": {"kind": "camera", "queue_frames": 2},
        "sampler": {"sample_rate": 1.0}, "uplink": {"spool_dir": str(tmp_path / "spool")},
        "exit_when_drained": True, "drain_timeout_s": 0.1, "summary_path": str(tmp_path / "summary.json"),
        "metrics_port": free_port(), "detections_rate_hz": 0})
    rt = EndpointRuntime(config)
    detect = rt.loop.detect

    def slow_detect(image):
        if not in_detector.is_set():
            in_detector.set()
            assert exhausted.wait(10)  # the camera delivers all its frames while the first is in the detector
        return detect(image)

    rt.loop.detect = slow_detect
    worker = threading.Thread(target=rt.run)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive()
    edge.loop_stop()

    dropped = N_FRAMES - 3  # one frame in the detector, two waiting: the rest were the oldest when a newer came
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (summary["frames_seen"], summary["frames_dropped"], summary["frames_sampled"]) == (3, dropped, 3)
    assert len(summary["sampled_ids"]) == 3
    last = None
    while not telemetry.empty():
        last = telemetry.get()
    assert last is not None and last.frames_dropped == dropped and last.frames_seen == 3
    assert rt.metrics.registry.get_sample_value("edgeloop_endpoint_frames_dropped_total",
                                                {"endpoint": "cam-live"}) == dropped
