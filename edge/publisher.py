"""Push a signed student to one endpoint over MQTT: the announcement, then the full file or a delta."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Literal

import paho.mqtt.client as mqtt

from edge.delta_encode import encode_delta
from endpoint.wire import protocol
from endpoint.wire.manifest import Manifest, canonical_bytes
from endpoint.wire.protocol import ModelAnnouncement

log = logging.getLogger(__name__)

PublishFn = Callable[[str, bytes], Any]


class PushError(RuntimeError):
    """The MQTT client refused to send the push."""


@dataclass(frozen=True)
class PushResult:
    """What crossed the link: both payloads' bytes, and which encoding was used."""

    bytes_sent: int
    encoding: Literal["full", "delta"]
    full_bytes: int  # what a full push would have cost, for reports


class ModelPublisher:
    """Sends via a ``publish(topic, payload)`` callable or a client with ``publish(topic, payload, qos, retain)``."""

    def __init__(self, client: PublishFn | Any, qos: int = 1):
        self._client = client
        self.qos = qos

    def _send(self, topic: str, payload: bytes) -> None:
        # Not retained: a stale delta is useless to an endpoint that missed its parent; the edge re-pushes
        # until the endpoint acks, and the retained status tells it which version each endpoint runs.
        if hasattr(self._client, "publish"):
            result = self._client.publish(topic, payload, qos=self.qos, retain=False)
        else:
            result = self._client(topic, payload)
        rc = getattr(result, "rc", mqtt.MQTT_ERR_SUCCESS)
        if rc == mqtt.MQTT_ERR_NO_CONN and self.qos > 0:
            log.warning("not connected: paho queued the push to %s until it reconnects", topic)
        elif result is False or rc != mqtt.MQTT_ERR_SUCCESS:
            raise PushError(f"publish to {topic} failed (rc={rc})")

    def push(self, endpoint_id: str, manifest: Manifest, signature: str, model_bytes: bytes,
             encoding: Literal["full", "delta", "auto"] = "full", parent_bytes: bytes | None = None,
             parent_version: str = "") -> PushResult:
        """Announce then send ``model_bytes`` (or its delta from ``parent_bytes``); ``auto`` sends the smaller."""
        parent_version = parent_version or manifest.parent_version
        if encoding == "auto" and (parent_bytes is None or not parent_version):
            encoding = "full"
        if encoding == "delta" and (parent_bytes is None or not parent_version):
            raise ValueError("a delta push needs parent_bytes and their version")
        if encoding != "full":
            delta = encode_delta(parent_bytes, model_bytes)
            if encoding == "auto":
                encoding = "delta" if len(delta) < len(model_bytes) else "full"
        body = delta if encoding == "delta" else model_bytes
        parent = parent_version if encoding == "delta" else ""
        header = protocol.make_model_data_header(body, endpoint_id=endpoint_id, version=manifest.version,
                                                 encoding=encoding, parent_version=parent)
        data_payload = protocol.encode_model_data(header, body)  # raises before anything is sent if too big
        announcement = ModelAnnouncement(
            endpoint_id=endpoint_id, version=manifest.version, parent_version=parent, encoding=encoding,
            url=protocol.MODEL_DATA_URL, size_bytes=manifest.size_bytes, sha256=manifest.sha256,
            signature=signature, manifest=canonical_bytes(manifest).decode("utf-8"))
        announcement_payload = protocol.encode(announcement)
        self._send(protocol.topic(endpoint_id, protocol.FEATURE_MODEL), announcement_payload)
        self._send(protocol.topic(endpoint_id, protocol.FEATURE_MODEL_DATA), data_payload)
        result = PushResult(len(announcement_payload) + len(data_payload), encoding, len(model_bytes))
        log.info("pushed %s %s to %s: %d bytes (%s; full file %d)", manifest.name, manifest.version,
                 endpoint_id, result.bytes_sent, encoding, len(model_bytes))
        return result
