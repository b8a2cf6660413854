"""The endpoint side of co-inference: run the head, code the features, ask the edge, wait for its detections.

Requests and results travel at QoS 0 and a reply later than ``timeout_s`` is dropped: a
detection for a frame the camera has long moved past is worth nothing, and a re-send would
only queue behind newer frames. The uplink bandwidth is estimated from each round trip and
sent along, so the edge's controller can move the split when the link changes.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from endpoint.model.detections import Detections
from endpoint.model.detector import OnnxDetector
from endpoint.model.letterbox import frame_to_jpeg
from endpoint.model.split_halves import SplitHeadRunner
from endpoint.wire.feature_codec import CodecSpec, encode_tensors
from endpoint.wire.protocol import PayloadTooLarge, ProtocolError
from endpoint.wire.split_protocol import (FEATURE_SPLIT_DIRECTIVE, FEATURE_SPLIT_REQUEST, FEATURE_SPLIT_RESULT,
                                          JPEG_PAIR_ID, SPLIT_KEY_DEVICE, SPLIT_KEY_EDGE, SplitRequestHeader, SplitResult,
                                          decode_directive, decode_result, encode_split_request)

log = logging.getLogger(__name__)

FULL_ONNX_NAME = "full.onnx"


class Link(Protocol):
    """What the client needs of an MQTT session (``endpoint.uplink.link.MqttLink`` is one)."""

    def on(self, feature: str, handler) -> None: ...

    def publish(self, feature: str, payload: bytes, qos: int = 1, retain: bool = False): ...


@dataclass(frozen=True)
class SplitOutcome:
    """One frame's result: detections in source pixels (None when the edge did not answer in time)."""

    detections: Detections | None
    split_key: str
    codec: str
    request_bytes: int  # uplink payload bytes (0 for device-only)
    latency_ms: float  # from the frame to its detections, on this side
    edge_ms: float = 0.0
    reason: str = ""


class SplitClient:
    """Runs the configured split for each frame; thread-safe towards the link's callbacks."""

    def __init__(self, link: Link, endpoint_id: str, set_dir: str | Path, split_key: str, codec: str,
                 timeout_s: float = 1.0, jpeg_quality: int = 85, threads: int = 1, conf_threshold: float = 0.25,
                 follow_directives: bool = True):
        self.link, self.endpoint_id = link, endpoint_id
        self.set_dir = Path(set_dir)
        self.timeout_s, self.jpeg_quality, self.threads = timeout_s, jpeg_quality, threads
        self.conf_threshold = conf_threshold
        self.follow_directives = follow_directives
        self._heads: dict[str, SplitHeadRunner] = {}
        self._whole: OnnxDetector | None = None
        self._lock = threading.Lock()
        self._waiting: dict[str, tuple[threading.Event, list]] = {}
        self._counter = itertools.count()
        self.bandwidth_bytes_per_s = 0.0  # EWMA of (request + reply bytes) / transfer time; 0 until measured
        self.switches = 0
        self.select(split_key, codec)
        link.on(FEATURE_SPLIT_RESULT, self._on_result)
        link.on(FEATURE_SPLIT_DIRECTIVE, self._on_directive)

    def select(self, split_key: str, codec: str) -> None:
        """Run ``split_key`` with ``codec`` from the next frame on; loads the head (or full model) now."""
        spec = CodecSpec.parse(codec) if split_key not in (SPLIT_KEY_DEVICE, SPLIT_KEY_EDGE) else None
        if split_key == SPLIT_KEY_DEVICE or split_key == SPLIT_KEY_EDGE:
            self._whole_model()  # input size for JPEG, or the device-only detector
        elif split_key not in self._heads:
            self._heads[split_key] = SplitHeadRunner(self.set_dir / f"{split_key}.head.onnx", self.threads)
        with self._lock:
            self.split_key, self.spec = split_key, spec
        log.info("split mode: %s%s", split_key, f" with {spec.name}" if spec else "")

    def head(self, split_key: str) -> SplitHeadRunner:
        """The head loaded for ``split_key`` (KeyError if it was never selected)."""
        return self._heads[split_key]

    def infer(self, image_bgr: np.ndarray) -> SplitOutcome:
        """Detections of one frame: on the device, or by asking the edge and waiting up to ``timeout_s``."""
        started = time.perf_counter()
        with self._lock:
            split_key, spec = self.split_key, self.spec
        if split_key == SPLIT_KEY_DEVICE:
            dets = self._detect_whole(image_bgr)
            return SplitOutcome(dets, split_key, "", 0, (time.perf_counter() - started) * 1e3)
        if split_key == SPLIT_KEY_EDGE:
            payload, pair_id, codec = frame_to_jpeg(image_bgr, self._whole_model().input_size, self.jpeg_quality), \
                JPEG_PAIR_ID, "jpeg"
        else:
            head = self._heads[split_key]
            feats, _ = head.run(image_bgr)
            payload, pair_id, codec = encode_tensors(feats, spec), head.meta.pair_id, spec.name
        request_id = f"{self.endpoint_id}-{next(self._counter):08d}"
        header = SplitRequestHeader(endpoint_id=self.endpoint_id, request_id=request_id, pair_id=pair_id, codec=codec,
                                    source_width=image_bgr.shape[1], source_height=image_bgr.shape[0],
                                    sent_time=time.time(), payload_bytes=len(payload),
                                    link_bytes_per_s=self.bandwidth_bytes_per_s)
        try:
            message = encode_split_request(header, payload)
        except PayloadTooLarge as exc:  # a large fp32 crossing at a large input: this frame is lost, not the process
            latency_ms = (time.perf_counter() - started) * 1e3
            return SplitOutcome(None, split_key, codec, 0, latency_ms, reason=f"too_large: {exc}")
        done, box = threading.Event(), []
        with self._lock:
            self._waiting[request_id] = (done, box)
        sent = time.perf_counter()
        self.link.publish(FEATURE_SPLIT_REQUEST, message, qos=0)
        answered = done.wait(self.timeout_s)
        with self._lock:
            self._waiting.pop(request_id, None)
        latency_ms = (time.perf_counter() - started) * 1e3
        if not answered:
            return SplitOutcome(None, split_key, codec, len(message), latency_ms, reason="timeout")
        result, reply_bytes, arrived = box
        if not result.ok:
            return SplitOutcome(None, split_key, codec, len(message), latency_ms, result.edge_ms, result.reason)
        self._observe(len(message) + reply_bytes, arrived - sent - result.edge_ms / 1e3)
        h, w = image_bgr.shape[:2]
        return SplitOutcome(detections_from_protocol(result.detections, w, h), split_key, codec, len(message),
                            latency_ms, result.edge_ms)

    def _observe(self, moved_bytes: int, transfer_s: float) -> None:
        if transfer_s <= 1e-4:
            return  # loopback or clock noise: no information about the link
        sample = moved_bytes / transfer_s
        self.bandwidth_bytes_per_s = sample if not self.bandwidth_bytes_per_s else \
            0.7 * self.bandwidth_bytes_per_s + 0.3 * sample

    def _on_result(self, payload: bytes) -> None:
        arrived = time.perf_counter()
        try:
            result: SplitResult = decode_result(payload)
        except ProtocolError as exc:
            log.warning("dropping a malformed split result: %s", exc)
            return
        with self._lock:  # taken, so a second answer (two servers, a duplicate) finds nothing: it unpacked 6 of 3
            waiting = self._waiting.pop(result.request_id, None)
        if waiting is None:
            log.debug("late, repeated or unknown split result %s dropped", result.request_id)
            return
        done, box = waiting
        box.extend([result, len(payload), arrived])
        done.set()

    def _on_directive(self, payload: bytes) -> None:
        try:
            directive = decode_directive(payload)
        except ProtocolError as exc:
            log.warning("dropping a malformed split directive: %s", exc)
            return
        if not self.follow_directives or (directive.split_key, directive.codec) == (self.split_key,
                                                                                     self.spec.name if self.spec else ""):
            return
        try:
            self.select(directive.split_key, directive.codec or "q8c-zlib")
            self.switches += 1
            log.info("edge directive (%s): now %s %s", directive.reason, directive.split_key, directive.codec)
        except (ValueError, OSError) as exc:  # a head this endpoint does not hold, or an unknown codec
            log.warning("cannot follow directive %s/%s: %s", directive.split_key, directive.codec, exc)

    def _whole_model(self) -> OnnxDetector:
        # the device-only path is the endpoint's detector itself: its metadata reader, NMS and their defaults
        if self._whole is None:
            self._whole = OnnxDetector(self.set_dir / FULL_ONNX_NAME, conf_threshold=self.conf_threshold,
                                       threads=self.threads or None)
        return self._whole

    def _detect_whole(self, image_bgr: np.ndarray) -> Detections:
        return self._whole_model().detect(image_bgr)


def detections_from_protocol(detections, width: int, height: int) -> Detections:
    """Wire detections (normalized boxes) back to pixels of a ``width`` x ``height`` frame."""
    if not detections:
        return Detections.empty()
    scale = np.array([width, height, width, height], np.float64)
    return Detections(np.array([d.box for d in detections], np.float64) * scale,
                      np.array([d.conf for d in detections]), np.array([d.cls for d in detections]))


__all__ = ["Link", "SplitClient", "SplitOutcome", "detections_from_protocol"]
