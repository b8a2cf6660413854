"""The real ``edgeloop endpoint`` as an aarch64 process (QEMU user mode, Debian Bookworm's Python 3.11, the Pi
wheels) against the real broker: native ingest stores and acks its frames, and it takes a signed delta push."""

from __future__ import annotations

import hashlib
import os
import logging
import queue
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest
import yaml

from edge.frame_index import FrameIndex, FrameRecord
from edge.ingest import Ingest
from edge.ingest_config import IngestConfig
from edge.mqtt_connection import MqttConnection
from edge.publisher import ModelPublisher
from edge.signing import generate_keypair, load_private_key, sign
from edge.store.local import LocalStore
from endpoint.wire import protocol
from endpoint.wire.broker_config import BrokerConfig
from endpoint.wire.manifest import Manifest
from tests.deploy import aarch64_sysroot
from tests.deploy.aarch64_sysroot import REPO_ROOT, Aarch64Root, SysrootUnavailable, ensure_sysroot

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)

ENDPOINT_ID = "cam-arm"
# Emulated inference is about 250x slower than native: a small frame and a few of them per second.
SOURCE = {"kind": "scenario", "fps": 4.0, "width": 160, "height": 120}
WAIT_S = 120.0  # generous: emulated start-up alone takes 5-10 s on a busy two-core machine


@pytest.fixture(scope="session")
def aarch64_root() -> Aarch64Root:
    """Debian Bookworm arm64 with the endpoint's Pi wheels, built once and cached under .cache/."""
    started = time.monotonic()
    try:
        root = ensure_sysroot()
    except SysrootUnavailable as exc:
        pytest.skip(f"no aarch64 root: {exc}")
    log.info("aarch64 root ready in %.1f s: %s", time.monotonic() - started, root.path)
    return root


class EdgeSide:
    """The edge's view of one endpoint: its model acks and telemetry, and a publisher of pushes."""

    def __init__(self, port: int):
        self.model_acks: queue.Queue[protocol.Ack] = queue.Queue()
        self.telemetry: list[protocol.Telemetry] = []
        self._changed = threading.Condition()
        self.mqtt = MqttConnection("127.0.0.1", port, client_id="test-edge")
        self.mqtt.subscribe(protocol.topic(ENDPOINT_ID, protocol.FEATURE_ACK), self._on_ack)
        self.mqtt.subscribe(protocol.topic(ENDPOINT_ID, protocol.FEATURE_TELEMETRY), self._on_telemetry, qos=0)
        assert self.mqtt.start(10), "the test's edge client did not connect"
        self.publisher = ModelPublisher(self.mqtt)

    def _on_ack(self, topic: str, payload: bytes) -> None:
        ack = protocol.decode(payload)
        if ack.model_version and not ack.frame_ids:  # frame acks come from ingest, on the same topic
            self.model_acks.put(ack)

    def _on_telemetry(self, topic: str, payload: bytes) -> None:
        with self._changed:
            self.telemetry.append(protocol.decode(payload))
            self._changed.notify_all()

    def wait_telemetry(self, predicate: Callable[[protocol.Telemetry], bool], timeout_s: float) -> bool:
        """Block until a telemetry message satisfies ``predicate``."""
        with self._changed:
            return self._changed.wait_for(lambda: any(predicate(t) for t in self.telemetry), timeout_s)


def second_version(model: bytes) -> bytes:
    """The same detector with one weight tensor nudged: a different file whose delta from the first is small."""
    import onnx

    graph = onnx.load_from_string(model)
    tensor = max((t for t in graph.graph.initializer if t.data_type == onnx.TensorProto.FLOAT and t.raw_data),
                 key=lambda t: len(t.raw_data))
    tensor.raw_data = (np.frombuffer(tensor.raw_data, np.float32) + np.float32(1e-3)).tobytes()
    return graph.SerializeToString()


def manifest_for(model: bytes, version: str, serial: int, parent: str) -> Manifest:
    return Manifest(name="student", version=version, target=ENDPOINT_ID, serial=serial, parent_version=parent,
                    format="onnx-fp32", sha256=hashlib.sha256(model).hexdigest(), size_bytes=len(model),
                    input_size=(128, 128), class_names=["person", "car", "bicycle"], metrics={}, created=time.time())


def stored(index: FrameIndex, version: str) -> list[FrameRecord]:
    return [f for f in index.frames(ENDPOINT_ID, 0) if f.model_version == version]


def test_aarch64_endpoint_uploads_frames_and_swaps_to_a_signed_push(aarch64_root, tmp_path, broker,
                                                                    tiny_yolo_onnx):  # the root first: it may skip
    key_path, public_path = generate_keypair(tmp_path / "keys")
    v1 = tiny_yolo_onnx.read_bytes()
    v2 = second_version(v1)
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    (models_dir / "v0001.onnx").write_bytes(v1)
    config = tmp_path / "endpoint.yaml"
    config.write_text(yaml.safe_dump({
        "endpoint_id": ENDPOINT_ID, "broker": {"port": broker.port}, "source": SOURCE,
        "sampler": {"name": "uniform", "sample_rate": 1.0},
        "uplink": {"spool_dir": str(tmp_path / "spool")},
        "model": {"path": str(models_dir / "v0001.onnx"), "version": "v0001", "models_dir": str(models_dir),
                  "public_key": str(public_path)},
        "telemetry_interval_s": 0.5}))

    store = LocalStore(tmp_path / "store")
    index = FrameIndex(store)
    ingest = Ingest(IngestConfig(broker=BrokerConfig(host=broker.host, port=broker.port), shared_group="",
                                 ack_flush_interval_s=0.05), store).start()
    edge = EdgeSide(broker.port)
    log_path = tmp_path / "endpoint.log"
    started = time.monotonic()
    with open(log_path, "wb") as log_file:
        endpoint = subprocess.Popen(aarch64_root.command("-m", "pipelines.cli", "endpoint", "--config", str(config)),
                                    env=aarch64_root.env(REPO_ROOT), cwd=tmp_path, stdout=log_file,
                                    stderr=subprocess.STDOUT)

    def endpoint_log() -> str:
        return f"exit {endpoint.poll()}; endpoint log:\n{log_path.read_text(errors='replace')[-3000:]}"

    try:
        # 1. frames detected on aarch64 by v0001 reach the store, and the endpoint hears the acks
        assert ingest.wait_until(lambda _: len(stored(index, "v0001")) >= 2, WAIT_S), endpoint_log()
        assert edge.wait_telemetry(lambda t: t.frames_acked >= 1, WAIT_S), endpoint_log()
        first_s = time.monotonic() - started

        # 2. a signed delta push: rebuilt, verified and swapped in by the aarch64 process
        manifest = manifest_for(v2, "v0002", serial=2, parent="v0001")
        pushed = edge.publisher.push(ENDPOINT_ID, manifest, sign(manifest, load_private_key(key_path)), v2,
                                     encoding="delta", parent_bytes=v1, parent_version="v0001")
        assert pushed.encoding == "delta"
        try:
            ack = edge.model_acks.get(timeout=WAIT_S)
        except queue.Empty:
            pytest.fail(f"no model ack within {WAIT_S:.0f} s; {endpoint_log()}")
        assert (ack.ok, ack.model_version, ack.reason) == (True, "v0002", ""), endpoint_log()
        assert (models_dir / "v0002.onnx").read_bytes() == v2

        # 3. it now detects with v0002: its telemetry says so, and so do the frames it uploads
        assert edge.wait_telemetry(lambda t: t.model_version == "v0002" and t.inference_ms > 0, WAIT_S), \
            endpoint_log()
        assert ingest.wait_until(lambda _: len(stored(index, "v0002")) >= 1, WAIT_S), endpoint_log()
        swap_s = time.monotonic() - started - first_s
        assert endpoint.poll() is None, endpoint_log()
    finally:
        endpoint.terminate()
        try:
            endpoint.wait(timeout=60)
        except subprocess.TimeoutExpired:
            endpoint.kill()
            endpoint.wait(timeout=30)
        edge.mqtt.stop()
        ingest.stop()

    frame = stored(index, "v0002")[0]
    image = cv2.imdecode(np.frombuffer(store.get(frame.jpeg_key), np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[:2] == (SOURCE["height"], SOURCE["width"])
    assert ingest.stats().rejected_total == 0
    print(f"aarch64 endpoint: first frames stored and acked after {first_s:.1f} s, push to v0002 frames in "
          f"{swap_s:.1f} s; {len(index.frames(ENDPOINT_ID, 0))} frames stored")


def test_the_debian_mirror_is_read_from_apt_sources(tmp_path):
    one_line = tmp_path / "sources.list"
    one_line.write_text("# deb http://old.example/debian bookworm main\n"
                        "deb http://security.example/debian-security bookworm-security main\n"
                        "deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian/ bookworm main\n")
    deb822 = tmp_path / "debian.sources"
    deb822.write_text("Types: deb\nURIs: http://other.example/debian-security\nSuites: bookworm-security\n\n"
                      "Types: deb deb-src\nURIs: http://deb822.example/debian\nSuites: bookworm bookworm-updates\n"
                      "Components: main\n")
    assert aarch64_sysroot.debian_mirror([one_line]) == "http://mirror.example/debian"
    assert aarch64_sysroot.debian_mirror([deb822, one_line]) == "http://deb822.example/debian"
    assert aarch64_sysroot.debian_mirror([tmp_path / "missing"]) == aarch64_sysroot.DEFAULT_MIRROR


def test_without_root_or_network_the_root_is_unavailable_not_broken(tmp_path, monkeypatch):
    with pytest.raises(SysrootUnavailable, match="unreachable"):
        aarch64_sysroot._probe("http://127.0.0.1:1/debian/dists/bookworm/Release", "the Debian mirror")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(SysrootUnavailable, match="needs root"):
        ensure_sysroot(cache_root=tmp_path / "cache")
    assert not [p for p in (tmp_path / "cache").iterdir() if p.suffix != ".lock"]
