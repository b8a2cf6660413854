"""The edge side of co-inference: finish split requests (tail or whole model) and publish the detections.

Subscribes to ``edgeloop/v1/+/split_request`` (QoS 0; with a group name, an MQTT shared
subscription so several servers share the load) and answers on ``edgeloop/v1/<id>/split_result``.
A single worker serves the newest requests first and drops what waited past ``max_wait_s``: an
answer the endpoint has already given up on would only delay the next one. With measured
options, a ``SplitController`` per endpoint re-decides the split as reported bandwidth changes
and publishes a retained ``split_directive``.

Every request is guarded: a request that fails is answered ``ok=false`` with a reason, the worker lives
on, and a full queue answers ``busy``. The endpoint id in a request must be the topic's (which the
broker's ACL ties to the sender's login).

Run: ``edgeloop split-server --set-dir DIR [--broker-config FILE] [--host H --port P] [--username split
--password-file F] [--tls-ca-file ca.crt] [--options DIR/options.json]``.
"""

from __future__ import annotations

import argparse
import collections
import logging
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from edge.mqtt_connection import MqttConnection
from edge.split.selection import SplitController, load_options
from edge.split.server_args import add_split_server_arguments, broker_config_from_args
from edge.split.split_set import load_split_set, pair_of
from edge.split.tail_runner import MAX_IMAGE_PIXELS, SplitTailRunner, detect_jpeg
from endpoint.model.detector import OnnxDetector
from endpoint.wire import protocol
from endpoint.wire.broker_config import BrokerConfig
from endpoint.wire.feature_codec import CodecError, decode_tensors
from endpoint.wire.split_protocol import (FEATURE_SPLIT_DIRECTIVE, FEATURE_SPLIT_REQUEST, FEATURE_SPLIT_RESULT,
                                          JPEG_PAIR_ID, SplitDirective, SplitRequest, SplitResult, decode_split_request,
                                          encode_message)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BrokerTls:
    """TLS to the broker: the CA that signed its certificate (empty: plain MQTT), and an optional client pair."""

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""


@dataclass(frozen=True)
class ControllerSettings:
    """What the edge assumes about devices when it re-decides their split."""

    device_speed_factor: float = 0.2
    edge_speed_factor: float = 1.0
    accuracy_floor: float = 0.0
    rtt_ms: float = 5.0


class SplitServer:
    """Tails of one split set (and its full model for JPEG requests) behind MQTT."""

    def __init__(self, set_dir: str | Path, host: str, port: int, threads: int = 1, conf_threshold: float = 0.25,
                 iou_threshold: float = 0.7, share_group: str = "", max_wait_s: float = 1.0,
                 options_path: str | Path | None = None, controller: ControllerSettings = ControllerSettings(),
                 username: str | None = None, password: str | None = None, max_queue: int = 32,
                 max_image_pixels: int = MAX_IMAGE_PIXELS, tls: BrokerTls = BrokerTls(),
                 broker: BrokerConfig | None = None):
        self.set_dir = Path(set_dir)
        self.manifest = load_split_set(self.set_dir)
        self.threads, self.conf_threshold, self.iou_threshold = threads, conf_threshold, iou_threshold
        self.max_wait_s, self.max_queue, self.max_image_pixels = max_wait_s, max_queue, max_image_pixels
        self._pairs = {info.pair_id: info.key for info in self.manifest.pairs}
        # the decoder checks a blob's declared shapes against these before it inflates anything
        self._shapes = {info.pair_id: [tuple(s) for s in info.crossing_shapes] for info in self.manifest.pairs}
        self._tails: dict[str, SplitTailRunner] = {}
        self._whole: OnnxDetector | None = None
        self._options = load_options(options_path) if options_path else None
        self._controller_settings = controller
        self._controllers: dict[str, SplitController] = {}
        self._queue: collections.deque[tuple[float, SplitRequest]] = collections.deque()
        self._wake = threading.Condition()
        self._stopping = False
        self.served = self.dropped = self.failed = self.refused = 0
        # a BrokerConfig (the CLI's) carries everything, client id and keepalive too; else the plain arguments
        self.mqtt = MqttConnection.from_config(broker) if broker is not None else MqttConnection(
            host, port, username=username, password=password, tls_ca_file=tls.ca_file,
            tls_cert_file=tls.cert_file, tls_key_file=tls.key_file)
        feature_filter = (protocol.shared_subscription(share_group, FEATURE_SPLIT_REQUEST) if share_group
                          else protocol.topic("+", FEATURE_SPLIT_REQUEST))
        self.mqtt.subscribe(feature_filter, self._on_request, qos=0)
        self._worker = threading.Thread(target=self._serve, name="split-server", daemon=True)

    def start(self, timeout_s: float = 10.0) -> SplitServer:
        self._worker.start()
        if not self.mqtt.start(timeout_s):
            raise ConnectionError(f"split server: no broker at {self.mqtt.host}:{self.mqtt.port}")
        log.info("split server on %s:%d serving %d pairs of %s", self.mqtt.host, self.mqtt.port,
                 len(self.manifest.pairs), self.set_dir)
        return self

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        self.mqtt.stop()
        if self._worker.is_alive():
            self._worker.join(5)

    def worker_alive(self) -> bool:
        """True while the worker thread serves (it must outlive any request)."""
        return self._worker.is_alive()

    def _on_request(self, topic: str, payload: bytes) -> None:
        try:
            topic_id, _ = protocol.parse_topic(topic)
            request = decode_split_request(payload)
        except Exception as exc:  # ProtocolError or worse: no readable request id, so nothing to answer to
            log.warning("dropping a malformed split request on %s: %s", topic, str(exc)[:300])
            self.refused += 1
            return
        h = request.header
        if h.endpoint_id != topic_id:
            # the broker's ACL ties the topic to the sender's login; the payload's id is only a claim
            self.refused += 1
            log.warning("split request %s on %s claims endpoint %r", h.request_id, topic, h.endpoint_id)
            self._publish_result(topic_id, SplitResult(endpoint_id=topic_id, request_id=h.request_id, ok=False,
                                                       reason=f"endpoint_mismatch: topic says {topic_id}"))
            return
        with self._wake:
            full = len(self._queue) >= self.max_queue
            if not full:
                self._queue.append((time.monotonic(), request))
                self._wake.notify()
        if full:
            self.refused += 1
            self._reply(request, SplitResult(endpoint_id=h.endpoint_id, request_id=h.request_id, ok=False,
                                             reason="busy"))

    def _serve(self) -> None:
        while True:
            with self._wake:
                while not self._queue and not self._stopping:
                    self._wake.wait()
                if self._stopping:
                    return
                arrived, request = self._queue.pop()  # newest first: it is the one still worth answering
                now = time.monotonic()
                stale = [r for t, r in self._queue if now - t > self.max_wait_s]
                self._queue = collections.deque((t, r) for t, r in self._queue if now - t <= self.max_wait_s)
            try:
                for old in stale:
                    self.dropped += 1
                    self._reply(old, SplitResult(endpoint_id=old.header.endpoint_id,
                                                 request_id=old.header.request_id, ok=False,
                                                 reason="stale: waited past max_wait_s on the edge"))
                self._reply(request, self.handle(request, arrived))
            except Exception:  # the worker is the only one: it must survive anything a request does
                log.exception("split server: serving %s failed", request.header.request_id)

    def handle(self, request: SplitRequest, arrived: float | None = None) -> SplitResult:
        """Detections for one request (the work of the worker, callable directly in tests); never raises."""
        arrived = time.monotonic() if arrived is None else arrived
        h = request.header
        try:
            source_hw = (h.source_height, h.source_width)
            if h.pair_id == JPEG_PAIR_ID:
                dets = detect_jpeg(self._whole_model(), request.payload, source_hw, self.max_image_pixels)
            else:
                tail = self._tail(h.pair_id)
                tensors = decode_tensors(request.payload, expected_shapes=self._shapes[h.pair_id])
                dets = tail.detect(tensors, source_hw, self.conf_threshold, self.iou_threshold)
            result = SplitResult(endpoint_id=h.endpoint_id, request_id=h.request_id,
                                 detections=dets.to_protocol(h.source_width, h.source_height),
                                 edge_ms=(time.monotonic() - arrived) * 1e3)
        except Exception as exc:  # bad features, a bomb image, an onnxruntime error: answer, never die
            self.failed += 1
            log.warning("split request %s from %s failed: %s", h.request_id, h.endpoint_id, exc)
            return SplitResult(endpoint_id=h.endpoint_id, request_id=h.request_id, ok=False,
                               reason=f"{_reason_code(exc)}: {str(exc)[:300]}")
        self.served += 1
        self._maybe_redecide(h.endpoint_id, h.link_bytes_per_s)
        return result

    def _reply(self, request: SplitRequest, result: SplitResult) -> None:
        self._publish_result(request.header.endpoint_id, result)

    def _publish_result(self, endpoint_id: str, result: SplitResult) -> None:
        # QoS 0: a result lost on the way is cheaper than one delivered late by a retry
        self.mqtt.publish(protocol.topic(endpoint_id, FEATURE_SPLIT_RESULT), encode_message(result), qos=0)

    def _tail(self, pair_id: str) -> SplitTailRunner:
        if pair_id not in self._tails:
            if pair_id not in self._pairs:
                raise KeyError(f"unknown pair {pair_id!r}: the endpoint's head is not from this split set")
            tail = SplitTailRunner(pair_of(self.manifest, self.set_dir, self._pairs[pair_id]).tail_path, self.threads)
            if tail.meta.pair_id != pair_id:  # the set rebuilt under the running server: another model's tail
                raise KeyError(f"unknown pair {pair_id!r}: {tail.path.name} now belongs to pair {tail.meta.pair_id!r} "
                               "(the split set changed since this server started)")
            self._tails[pair_id] = tail
        return self._tails[pair_id]

    def _whole_model(self) -> OnnxDetector:
        if self._whole is None:  # edge-only frames run the endpoint's own detector, thresholds as configured
            self._whole = OnnxDetector(self.set_dir / self.manifest.full_onnx, conf_threshold=self.conf_threshold,
                                       iou_threshold=self.iou_threshold, threads=self.threads or None)
        return self._whole

    def _maybe_redecide(self, endpoint_id: str, bandwidth_bytes_per_s: float) -> None:
        if self._options is None or not math.isfinite(bandwidth_bytes_per_s) or bandwidth_bytes_per_s <= 0:
            return
        s = self._controller_settings
        controller = self._controllers.get(endpoint_id)
        if controller is None:
            controller = SplitController(self._options, s.device_speed_factor, s.edge_speed_factor,
                                         s.accuracy_floor, bandwidth_bytes_per_s, s.rtt_ms)
            self._controllers[endpoint_id] = controller
            choice = controller.choice
        else:
            choice = controller.observe_bandwidth(bandwidth_bytes_per_s)
        if choice is None:
            return
        directive = SplitDirective(endpoint_id=endpoint_id, split_key=choice.option.split_key,
                                   codec=choice.option.codec if choice.option.codec != "jpeg" else "",
                                   bandwidth_bytes_per_s=controller.bandwidth_bytes_per_s,
                                   expected_latency_ms=choice.total_ms, reason="measured uplink bandwidth")
        self.mqtt.publish(protocol.topic(endpoint_id, FEATURE_SPLIT_DIRECTIVE), encode_message(directive), qos=1,
                          retain=True)
        log.info("endpoint %s: directive %s (%.0f B/s, %.1f ms expected)", endpoint_id, choice.option.name,
                 controller.bandwidth_bytes_per_s, choice.total_ms)


def _reason_code(exc: Exception) -> str:
    """The first word of a refusal, for an endpoint (or a fuzzer) to count by."""
    if isinstance(exc, CodecError):
        return "bad_features"
    if isinstance(exc, KeyError):
        return "unknown_pair"
    if isinstance(exc, ValueError):
        return "bad_payload"
    return "error"


def run_split_server(args) -> int:
    """Serve until Ctrl-C or SIGTERM."""
    try:  # a missing set, options or broker file, or a bad field: one line, not a traceback
        broker = broker_config_from_args(args)
        server = SplitServer(args.set_dir, broker.host, broker.port, args.threads, share_group=args.share_group,
                             options_path=args.options,
                             controller=ControllerSettings(args.device_speed, 1.0, args.accuracy_floor),
                             max_queue=args.max_queue, broker=broker).start()
    except (OSError, ValueError) as exc:
        log.error("edgeloop split-server: %s", exc)
        return 2
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="serve split-detector tails over MQTT")
    add_split_server_arguments(parser)
    args = parser.parse_args(argv)
    return run_split_server(args)  # logging is the caller's: ``edgeloop split-server`` configures it


if __name__ == "__main__":
    raise SystemExit(main())
