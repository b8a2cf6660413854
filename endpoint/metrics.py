"""Prometheus metrics of one endpoint, served on its own port."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from endpoint.protocol import Telemetry


class EndpointMetrics:
    def __init__(self, endpoint_id: str, port: int, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        labels = {"endpoint": endpoint_id}
        self._frames = Counter("edgeloop_endpoint_frames_total", "frames seen", ["endpoint"],
                               registry=self.registry).labels(**labels)
        self._latency = Histogram("edgeloop_endpoint_inference_ms", "student inference latency", ["endpoint"],
                                  buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
                                  registry=self.registry).labels(**labels)
        self._gauges = {name: Gauge(f"edgeloop_endpoint_{name}", help_, ["endpoint"],
                                    registry=self.registry).labels(**labels)
                        for name, help_ in [("frames_sampled", "frames sampled for upload"),
                                            ("frames_acked", "frames the edge acked"),
                                            ("spool_depth", "frames waiting in the spool"),
                                            ("bytes_up", "bytes of frames sent"),
                                            ("round", "current round")]}
        self._version = Gauge("edgeloop_endpoint_model_info", "running model version", ["endpoint", "version"],
                              registry=self.registry)
        self._endpoint_id = endpoint_id
        if port:
            start_http_server(port, addr="0.0.0.0", registry=self.registry)

    def observe_frame(self, inference_ms: float) -> None:
        self._frames.inc()
        self._latency.observe(inference_ms)

    def update(self, t: Telemetry) -> None:
        for name, value in [("frames_sampled", t.frames_sampled), ("frames_acked", t.frames_acked),
                            ("spool_depth", t.spool_depth), ("bytes_up", t.bytes_sent), ("round", t.round)]:
            self._gauges[name].set(value)
        self._version.clear()
        self._version.labels(endpoint=self._endpoint_id, version=t.model_version or "none").set(1)
