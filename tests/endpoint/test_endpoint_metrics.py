"""The endpoint's Prometheus counters follow its telemetry, dropped frames included."""

from prometheus_client import CollectorRegistry

from endpoint.metrics import EndpointMetrics
from endpoint.wire.protocol import Telemetry


def _telemetry(frames_dropped: int) -> Telemetry:
    return Telemetry(endpoint_id="cam-1", time=1.0, round=2, model_version="v0002", frames_seen=100,
                     frames_sampled=10, frames_acked=9, spool_depth=1, bytes_sent=5000, inference_ms=12.0,
                     frames_dropped=frames_dropped)


def test_dropped_frames_are_a_counter_that_follows_the_telemetry_total():
    registry = CollectorRegistry()
    metrics = EndpointMetrics("cam-1", port=0, registry=registry)
    for total in (0, 7, 7, 19):
        metrics.update(_telemetry(total))
    value = registry.get_sample_value("edgeloop_endpoint_frames_dropped_total", {"endpoint": "cam-1"})
    assert value == 19
