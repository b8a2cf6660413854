"""``edgeloop endpoint --config FILE --mode split``: stream frames through a split detector until the source ends."""

from __future__ import annotations

import json
import logging
import signal
import statistics
import threading
from pathlib import Path

from endpoint.uplink.link import MqttLink
from endpoint.split.client import SplitClient
from endpoint.wire.config_base import load_command_config
from endpoint.split.config import SplitEndpointConfig
from endpoint.sources.streams import open_source

log = logging.getLogger(__name__)


def run_split_endpoint(config_path: str) -> int:
    config = load_command_config(SplitEndpointConfig, config_path, "edgeloop endpoint --mode split")
    if config is None:
        return 2
    b, s = config.broker, config.split
    link = MqttLink(config.endpoint_id, b.host, b.port, b.username, b.mqtt_password(), b.keepalive_s,
                    tls_ca_file=b.tls_ca_file, tls_cert_file=b.tls_cert_file, tls_key_file=b.tls_key_file,
                    client_id=b.client_id)
    client = SplitClient(link, config.endpoint_id, s.set_dir, s.split_key, s.codec, s.timeout_s, s.jpeg_quality,
                         s.threads, s.conf_threshold, s.follow_directives)
    stop = threading.Event()

    def _stop(signum, frame):
        log.info("signal %d: stopping split endpoint %s", signum, config.endpoint_id)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    link.start()
    if not link.connected.wait(30):
        log.error("no broker at %s:%d after 30 s", b.host, b.port)
        link.stop()
        return 1
    latencies, sent_bytes, lost, frames = [], [], 0, 0
    try:
        for frame in open_source(config.source):
            if stop.is_set():
                break
            outcome = client.infer(frame.image)
            frames += 1
            if outcome.detections is None:
                lost += 1
                log.warning("frame %d: no detections (%s)", frames, outcome.reason)
                continue
            latencies.append(outcome.latency_ms)
            sent_bytes.append(outcome.request_bytes)
            log.debug("frame %d: %d detections in %.1f ms via %s", frames, len(outcome.detections),
                      outcome.latency_ms, outcome.split_key)
    finally:
        link.stop()
    summary = {"endpoint_id": config.endpoint_id, "frames": frames, "answered": len(latencies), "lost": lost,
               "median_latency_ms": statistics.median(latencies) if latencies else None,
               "mean_request_bytes": statistics.fmean(sent_bytes) if sent_bytes else None,
               "split_key": client.split_key, "switches": client.switches,
               "bandwidth_bytes_per_s": client.bandwidth_bytes_per_s}
    log.info("split endpoint done: %s", summary)
    if config.summary_path:
        Path(config.summary_path).parent.mkdir(parents=True, exist_ok=True)
        Path(config.summary_path).write_text(json.dumps(summary, indent=2))
    return 0


__all__ = ["run_split_endpoint"]
