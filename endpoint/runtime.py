"""The endpoint process: source → detector → sampler → spool → uplink, with plans, telemetry and model swaps.

Capture, detection and spooling overlap (``FrameLoop``): a capture thread reads ahead, the detector runs on
the calling thread, a writer thread encodes and spools, and the uplink thread sends.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import threading
import time
from dataclasses import asdict
from pathlib import Path

from endpoint.config import EndpointConfig
from endpoint.loop.frame_loop import FrameLoop
from endpoint.loop.frame_writer import FrameWriter, WriteJob
from endpoint.loop.run_stats import RunStats
from endpoint.sources.streams import SourceFrame, drops_when_behind, open_source
from endpoint.uplink.detections_publisher import DetectionsPublisher
from endpoint.uplink.link import MqttLink
from endpoint.uplink.sampler import STRATEGIES, Sampler, SamplerParams
from endpoint.uplink.spool import Spool
from endpoint.uplink.token_bucket import TokenBucket
from endpoint.uplink.uplink import Uplink
from endpoint.wire import protocol
from endpoint.wire.protocol import Detection, Plan, ProtocolError, Telemetry

log = logging.getLogger(__name__)

__all__ = ["EndpointRuntime", "RunStats"]


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
        self.stats = RunStats()
        self.models = _open_models(config)
        b = config.broker
        self.link = MqttLink(config.endpoint_id, b.host, b.port, b.username, b.mqtt_password(), b.keepalive_s,
                             self.models.version, b.tls_ca_file, b.tls_cert_file, b.tls_key_file, b.client_id)
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
        self.detections = DetectionsPublisher(self.link, config.endpoint_id, config.detections_rate_hz)
        self.writer = FrameWriter(config.endpoint_id, self.spool, self.sampler, self.stats,
                                  config.uplink.jpeg_quality, on_spooled=self._on_spooled)
        self.loop = FrameLoop(self.models.detect, self.models.version, self.sampler, self.writer, self.stats,
                              round_now=lambda: self.round, on_frame=self._on_frame, prepare=self.models.prepare)
        self._last_telemetry = 0.0

    def run(self) -> RunStats:
        self.link.start()
        self.uplink.start()
        self.writer.start()
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
            self.writer.stop()  # frames handed to the writer are spooled before the process ends
            self._publish_telemetry()
            self.uplink.stop()
            self.link.stop()
            self._write_summary()
        return self.stats

    def stop(self) -> None:
        self.stop_event.set()
        self._plans.put(None)

    def _stream(self, source_config) -> None:
        """Stream one source to its end (or ``stop()``); every frame it sampled is spooled on return."""
        self._last_telemetry = 0.0
        self.loop.run(open_source(source_config), source_config.queue_frames, drops_when_behind(source_config),
                      self.stop_event, tick=self._tick)

    def _tick(self) -> None:
        if time.monotonic() - self._last_telemetry >= self.config.telemetry_interval_s:
            self._publish_telemetry()
            self._last_telemetry = time.monotonic()

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
            try:
                self._stream(source)
            except Exception:  # a plan this source cannot play (an unknown domain, a missing file): serve on
                log.exception("round %d: streaming domain %r failed; the round ends with the frames sampled so far",
                              plan.round, domain)
            while not self.stop_event.is_set() and not self.uplink.wait_drained(0.5):
                self._publish_telemetry()
            # a plan for the next round may have arrived while this one drained: that round is not done
            self.round_done = self.round == plan.round and not self.stop_event.is_set()
            self._publish_telemetry()

    def _wait_drained(self) -> None:
        deadline = time.monotonic() + self.config.drain_timeout_s
        while not self.stop_event.is_set() and time.monotonic() < deadline:
            if self.uplink.wait_drained(0.5):
                log.info("all sampled frames acked by the edge")
                return
        log.warning("stopping with %d frames still spooled (they are sent on the next start)", self.spool.depth())

    def _on_frame(self, frame: SourceFrame, detections: list[Detection], version: str, inference_ms: float) -> None:
        if self.metrics:
            self.metrics.observe_frame(inference_ms)
        h, w = frame.image.shape[:2]
        self.detections.offer(frame.capture_time, version, w, h, detections)

    def _on_spooled(self, job: WriteJob, frame_id: str) -> None:
        if job.round == self.round:  # a frame of the last round spooled just after a new plan counts there
            self.round_frames_sampled += 1
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
        # Checked before any state changes: applying half a plan and raising left the round switched.
        if plan.sampler not in STRATEGIES or not math.isfinite(plan.upload_rate_bytes_per_s):
            log.warning("ignoring a plan that cannot be applied: sampler %r, rate %s B/s", plan.sampler[:64],
                        plan.upload_rate_bytes_per_s)
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
                      round_frames_sampled=self.round_frames_sampled, round_done=self.round_done,
                      frames_dropped=self.stats.frames_dropped)
        if self.link.connected.is_set():
            self.link.publish(protocol.FEATURE_TELEMETRY, protocol.encode(t), qos=0)
        if self.metrics:
            self.metrics.update(t)

    def _write_summary(self) -> None:
        if not self.config.summary_path:
            return
        summary = {"endpoint_id": self.config.endpoint_id, **self.stats.as_dict(), **asdict(self.uplink.stats),
                   "spool_depth": self.spool.depth(), "model_version": self.models.version()}
        Path(self.config.summary_path).parent.mkdir(parents=True, exist_ok=True)
        Path(self.config.summary_path).write_text(json.dumps(summary, indent=1))


def _open_models(config: EndpointConfig):
    from endpoint.model.runner import ModelRunner

    return ModelRunner(config)


def _open_metrics(config: EndpointConfig):
    if not config.metrics_port:
        return None
    from endpoint.metrics import EndpointMetrics

    return EndpointMetrics(config.endpoint_id, config.metrics_port)
