"""Shared helpers of the ingest tests: valid and hand-built frame uploads, a config, and a paho peer."""

from __future__ import annotations

import io
import json
import struct
import threading
import time
import uuid

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from PIL import Image

from edge.ingest_config import IngestConfig
from endpoint.wire.broker_config import BrokerConfig
from endpoint.wire import protocol


def make_jpeg(seed: int = 0, width: int = 48, height: int = 32) -> bytes:
    """A small, valid, seed-dependent JPEG."""
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=80)
    return buf.getvalue()


def frame_payload(endpoint_id: str, frame_id: str, round_index: int = 0, jpeg: bytes | None = None) -> bytes:
    """A valid frame upload, as an endpoint would publish it."""
    jpeg = jpeg if jpeg is not None else make_jpeg(hash(frame_id) % 1000)
    header = protocol.make_frame_header(jpeg, endpoint_id=endpoint_id, frame_id=frame_id, capture_time=time.time(),
                                        round=round_index, model_version="s0", width=48, height=32)
    return protocol.encode_frame(header, jpeg)


def ingest_config(broker, **overrides) -> IngestConfig:
    fields = dict(broker=BrokerConfig(host=broker.host, port=broker.port), shared_group="", ack_flush_interval_s=0.02,
                  store_retry_initial_s=0.02, store_retry_max_s=0.2)
    return IngestConfig(**(fields | overrides))


def ack_listener(broker, name: str, on_message) -> mqtt.Client:
    """A plain paho client subscribed to every endpoint's ack topic, delivering to ``on_message``."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{name}-{uuid.uuid4().hex[:8]}",
                         protocol=mqtt.MQTTv311)
    client.on_message = on_message
    subscribed = threading.Event()
    client.on_subscribe = lambda *args: subscribed.set()
    client.connect(broker.host, broker.port)
    client.loop_start()
    client.subscribe(protocol.topic("+", protocol.FEATURE_ACK), qos=1)
    assert subscribed.wait(10), f"{name} not subscribed to acks"
    return client


class Peer:
    """A plain paho client playing the endpoints: publishes uploads, collects acks with their arrival times."""

    def __init__(self, broker):
        self.acks: list[tuple[float, protocol.Ack]] = []
        self._lock = threading.Condition()
        self.client = ack_listener(broker, "peer", self._on_message)

    def _on_message(self, client, userdata, message) -> None:
        with self._lock:
            self.acks.append((time.monotonic(), protocol.decode(message.payload)))
            self._lock.notify_all()

    def publish(self, endpoint_id: str, payload: bytes) -> None:
        self.client.publish(protocol.topic(endpoint_id, protocol.FEATURE_FRAME), payload, qos=1).wait_for_publish(5)

    def acked_ids(self) -> list[str]:
        with self._lock:
            return [fid for _, ack in self.acks if ack.ok for fid in ack.frame_ids]

    def refused(self) -> dict[str, str]:
        """frame id -> reason, for frames the edge says it can never store."""
        with self._lock:
            return {fid: ack.reason for _, ack in self.acks if not ack.ok for fid in ack.frame_ids}

    def wait_acked(self, n_ids: int, timeout_s: float = 10.0) -> bool:
        with self._lock:
            return self._lock.wait_for(lambda: len(self.acked_ids()) >= n_ids, timeout_s)

    def wait_refused(self, n_ids: int, timeout_s: float = 10.0) -> bool:
        with self._lock:
            return self._lock.wait_for(lambda: len(self.refused()) >= n_ids, timeout_s)

    def close(self) -> None:
        if self.client.is_connected():
            self.client.disconnect()
        self.client.loop_stop()


def raw_payload(header: dict | bytes, jpeg: bytes) -> bytes:
    """A frame payload built by hand, bypassing encode_frame's checks."""
    head = header if isinstance(header, bytes) else json.dumps(header).encode()
    return protocol.FRAME_MAGIC + struct.pack(">I", len(head)) + head + jpeg


def header_dict(jpeg: bytes, endpoint_id: str = "cam-a", frame_id: str = "bad", **changes) -> dict:
    header = protocol.make_frame_header(jpeg, endpoint_id="cam-a", frame_id="placeholder", capture_time=1.0,
                                        round=0, model_version="s0", width=48, height=32)
    # Ids go in after validation, so a header can carry ids the protocol refuses.
    return header.model_dump(exclude_none=True) | {"endpoint_id": endpoint_id, "frame_id": frame_id} | changes
