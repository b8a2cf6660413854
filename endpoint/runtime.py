"""The endpoint process: source → detector → sampler → spool → uplink, with plans, telemetry and model swaps."""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2

from endpoint import protocol
from endpoint.config import EndpointConfig
from endpoint.mqtt_link import MqttLink
from endpoint.protocol import Plan, ProtocolError, Telemetry
from endpoint.sampler import Candidate, Sampler, SamplerParams
from endpoint.sources import SourceFrame, open_source
from endpoint.spool import Spool, SpoolFull
from endpoint.token_bucket import TokenBucket
from endpoint.uplink import Uplink

log = logging.getLogger(__name__)


@dataclass
class RunStats:
    frames_seen: int = 0
    frames_sampled: int = 0
    frames_skipped_spool_full: int = 0
    inference_ms_total: float = 0.0
    sampled_ids: list[str] | None = None


class EndpointRuntime:
    """Owns the endpoint's parts; ``run()`` streams until the source ends or ``stop()`` is called."""

    def __init__(self, config: EndpointConfig):
        self.config = config
        self.round = config.round
        self.round_done = False
        self.round_frames_sampled = 0
        self.stop_event = threading.Event()
        self._plans: queue.Queue[Plan | None] = queue.Queue()
        self._last_plan: Plan | None = None
        self.stats = RunStats(sampled_ids=[])
        self.models = _open_models(config)
        self.link = MqttLink(config.endpoint_id, config.broker.host, config.broker.port, config.broker.username,
                             config.broker.password, config.broker.keepalive_s, self.models.version)
        self.spool = Spool(config.uplink.spool_dir, config.uplink.spool_max_frames)
        self.bucket = TokenBucket(config.uplink.rate_bytes_per_s, config.uplink.burst_bytes)
        self.uplink = Uplink(self.link, self.spool, self.bucket, config.uplink.window, config.uplink.ack_timeout_s)
        s = config.sampler
        self.sampler = Sampler(s.name, SamplerParams(sample_rate=s.sample_rate,
                                                     conf_threshold=config.model.conf_threshold),
                               s.round_budget_bytes, seed=s.seed)
        self.link.on(protocol.FEATURE_PLAN, self._on_plan)
        self.models.attach(self.link)
        self.metrics = _open_metrics(config)

    def run(self) -> RunStats:
        self.link.start()
        self.uplink.start()
        try:
            if self.config.source.follow_plan:
                self._follow_plans()
            else:
                self._stream(self.config.source)
            if self.config.exit_when_drained and not self.stop_event.is_set():
                log.info("source ended; waiting for %d frames to be acked", self.spool.depth())
                self._wait_drained()
            elif not self.stop_event.is_set():
                log.info("source ended; serving until stopped")
                self.stop_event.wait()
        finally:
            self._publish_telemetry()
            self.uplink.stop()
            self.link.stop()
            self._write_summary()
        return self.stats

    def stop(self) -> None:
        self.stop_event.set()
        self._plans.put(None)

    def _stream(self, source_config) -> None:
        last_telemetry = 0.0
        for frame in open_source(source_config):
            if self.stop_event.is_set():
                break
            self._handle(frame)
            if time.monotonic() - last_telemetry >= self.config.telemetry_interval_s:
                self._publish_telemetry()
                last_telemetry = time.monotonic()

    def _follow_plans(self) -> None:
        """Lab testbed: each plan names a domain and a frame count; stream them, drain, report, wait."""
        next_index: dict[str, int] = {}
        while not self.stop_event.is_set():
            plan = self._plans.get()
            if plan is None:
                return
            if not plan.frames:
                continue
            domain = plan.domain or self.config.source.domain
            source = self.config.source.model_copy(update={
                "domain": domain, "max_frames": plan.frames, "fps": self.config.source.fps,
                "start_index": self.config.source.start_index + next_index.get(domain, 0),
                "path": self.config.source.domain_paths.get(domain, self.config.source.path),
                "loop": True})
            next_index[domain] = next_index.get(domain, 0) + plan.frames
            self.round_done = False
            self._stream(source)
            while not self.stop_event.is_set() and not self.uplink.wait_drained(0.5):
                self._publish_telemetry()
            self.round_done = not self.stop_event.is_set()
            self._publish_telemetry()

    def _wait_drained(self) -> None:
        deadline = time.monotonic() + self.config.drain_timeout_s
        while not self.stop_event.is_set() and time.monotonic() < deadline:
            if self.uplink.wait_drained(0.5):
                log.info("all sampled frames acked by the edge")
                return
        log.warning("stopping with %d frames still spooled (they are sent on the next start)", self.spool.depth())

    def _handle(self, frame: SourceFrame) -> None:
        index = self.stats.frames_seen
        self.stats.frames_seen += 1
        started = time.perf_counter()
        detections = self.models.detect(frame.image)
        self.stats.inference_ms_total += (time.perf_counter() - started) * 1000
        if self.metrics:
            self.metrics.observe_frame((time.perf_counter() - started) * 1000)
        if not self.sampler.wants(Candidate(index, [float(d.conf) for d in detections])):
            return
        ok, jpeg = cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, self.config.uplink.jpeg_quality])
        if not ok:
            log.warning("could not encode frame %d as JPEG; skipped", index)
            return
        jpeg = jpeg.tobytes()
        h, w = frame.image.shape[:2]
        seq, frame_id = self.spool.next_frame_id() if self.sampler.admit(len(jpeg)) else (None, None)
        if frame_id is None:
            return
        header = protocol.make_frame_header(
            jpeg, endpoint_id=self.config.endpoint_id, frame_id=frame_id, capture_time=frame.capture_time,
            round=self.round, model_version=self.models.version(), width=w, height=h, domain=frame.domain,
            detections=detections, labels=frame.labels)
        try:
            self.spool.put(seq, protocol.encode_frame(header, jpeg))
        except SpoolFull as exc:
            self.stats.frames_skipped_spool_full += 1
            log.warning("%s; frame skipped", exc)
            return
        self.stats.frames_sampled += 1
        self.round_frames_sampled += 1
        self.stats.sampled_ids.append(frame_id)
        self.uplink.notify()

    def _on_plan(self, payload: bytes) -> None:
        try:
            plan = protocol.decode(payload)
        except ProtocolError as exc:
            log.warning("ignoring a malformed plan: %s", exc)
            return
        if not isinstance(plan, Plan) or plan.endpoint_id != self.config.endpoint_id:
            log.warning("ignoring a plan that is not for %s", self.config.endpoint_id)
            return
        last = self._last_plan
        if last is not None and (plan.round < last.round or plan == last):
            return  # a stale plan, or the retained one again after a reconnect
        new_round = last is None or plan.round != last.round
        self._last_plan = plan
        if new_round:
            self.round_frames_sampled = 0
            self.round_done = False
        self.round = plan.round
        params = SamplerParams(sample_rate=plan.sample_rate, conf_threshold=self.config.model.conf_threshold)
        self.sampler.configure(plan.sampler, params, plan.upload_budget_bytes)
        self.bucket.set_rate(plan.upload_rate_bytes_per_s)
        log.info("round %d: budget %d bytes at %.0f B/s, sampler %s @ %.2f", plan.round, plan.upload_budget_bytes,
                 plan.upload_rate_bytes_per_s, plan.sampler, plan.sample_rate)
        if new_round:
            self._plans.put(plan)

    def _publish_telemetry(self) -> None:
        seen = max(1, self.stats.frames_seen)
        t = Telemetry(endpoint_id=self.config.endpoint_id, time=time.time(), round=self.round,
                      model_version=self.models.version(), frames_seen=self.stats.frames_seen,
                      frames_sampled=self.stats.frames_sampled, frames_acked=self.uplink.stats.frames_acked,
                      spool_depth=self.spool.depth(), bytes_sent=self.uplink.stats.bytes_sent,
                      inference_ms=self.stats.inference_ms_total / seen,
                      round_frames_sampled=self.round_frames_sampled, round_done=self.round_done)
        if self.link.connected.is_set():
            self.link.publish(protocol.FEATURE_TELEMETRY, protocol.encode(t), qos=0)
        if self.metrics:
            self.metrics.update(t)

    def _write_summary(self) -> None:
        if not self.config.summary_path:
            return
        summary = {"endpoint_id": self.config.endpoint_id, **asdict(self.stats), **asdict(self.uplink.stats),
                   "spool_depth": self.spool.depth(), "model_version": self.models.version()}
        Path(self.config.summary_path).parent.mkdir(parents=True, exist_ok=True)
        Path(self.config.summary_path).write_text(json.dumps(summary, indent=1))


def _open_models(config: EndpointConfig):
    from endpoint.model_runner import ModelRunner

    return ModelRunner(config)


def _open_metrics(config: EndpointConfig):
    if not config.metrics_port:
        return None
    from endpoint.metrics import EndpointMetrics

    return EndpointMetrics(config.endpoint_id, config.metrics_port)
