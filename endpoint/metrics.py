"""Prometheus metrics of one endpoint, served on its own port.

Names follow Prometheus conventions: counters end in ``_total``, durations are in seconds, sizes in bytes.
Telemetry carries the run's running totals; the counters take their increases.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from endpoint.wire.protocol import Telemetry

# telemetry field -> (counter name without _total, help)
_TOTALS = {"frames_sampled": ("edgeloop_endpoint_frames_sampled", "frames sampled for upload"),
           "frames_acked": ("edgeloop_endpoint_frames_acked", "frames the edge acked"),
           "bytes_sent": ("edgeloop_endpoint_upload_bytes", "bytes of frames sent, re-sends included"),
           "frames_dropped": ("edgeloop_endpoint_frames_dropped",
                              "frames a live camera dropped while the detector was behind")}


class EndpointMetrics:
    def __init__(self, endpoint_id: str, port: int, registry: CollectorRegistry | None = None):
        self.registry = r = registry or CollectorRegistry()
        labels = {"endpoint": endpoint_id}
        self._frames = Counter("edgeloop_endpoint_frames", "frames seen", ["endpoint"], registry=r).labels(**labels)
        self._latency = Histogram("edgeloop_endpoint_inference_seconds", "student inference latency", ["endpoint"],
                                  buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
                                  registry=r).labels(**labels)
        self._totals = {field: Counter(name, help_, ["endpoint"], registry=r).labels(**labels)
                        for field, (name, help_) in _TOTALS.items()}
        self._seen = {field: 0 for field in _TOTALS}
        self._spool_depth = Gauge("edgeloop_endpoint_spool_depth", "frames waiting in the spool", ["endpoint"],
                                  registry=r).labels(**labels)
        self._round = Gauge("edgeloop_endpoint_round", "current round", ["endpoint"], registry=r).labels(**labels)
        self._version = Gauge("edgeloop_endpoint_model_info", "running model version", ["endpoint", "version"],
                              registry=r)
        self._endpoint_id = endpoint_id
        if port:
            start_http_server(port, addr="0.0.0.0", registry=r)

    def observe_frame(self, inference_ms: float) -> None:
        self._frames.inc()
        self._latency.observe(inference_ms / 1000)

    def update(self, t: Telemetry) -> None:
        for field, counter in self._totals.items():
            value = getattr(t, field)
            if value > self._seen[field]:
                counter.inc(value - self._seen[field])
                self._seen[field] = value
        self._spool_depth.set(t.spool_depth)
        self._round.set(t.round)
        self._version.clear()
        self._version.labels(endpoint=self._endpoint_id, version=t.model_version or "none").set(1)
