"""Prometheus gauges of the lab's rounds: mAP per endpoint and round, bytes up and down."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from pipelines.results import RoundResult


class LabMetrics:
    """Updated once per round and endpoint; served on ``port`` when it is not 0."""

    def __init__(self, port: int = 0, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.map50_95 = Gauge("edgeloop_map50_95", "deployed student mAP50-95 on held-out frames", ["endpoint"],
                              registry=r)
        self.map50 = Gauge("edgeloop_map50", "deployed student mAP50 on held-out frames", ["endpoint"], registry=r)
        self.static_map50_95 = Gauge("edgeloop_static_map50_95", "never-updated student mAP50-95", ["endpoint"],
                                     registry=r)
        self.round = Gauge("edgeloop_round", "last finished round", registry=r)
        self.bytes_up = Counter("edgeloop_bytes_up", "frame bytes uploaded", ["endpoint"], registry=r)
        self.bytes_down = Counter("edgeloop_bytes_down", "model bytes pushed", ["endpoint"], registry=r)
        if port:
            start_http_server(port, registry=r)

    def record(self, result: RoundResult) -> None:
        ep = result.endpoint
        self.map50_95.labels(endpoint=ep).set(result.map50_95)
        self.map50.labels(endpoint=ep).set(result.map50)
        self.static_map50_95.labels(endpoint=ep).set(result.static_map50_95)
        self.round.set(result.round)
        self.bytes_up.labels(endpoint=ep).inc(result.upload_bytes)
        self.bytes_down.labels(endpoint=ep).inc(result.push_bytes)
