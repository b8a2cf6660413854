"""The Grafana dashboard is valid JSON whose every PromQL metric is one the code registers."""

from __future__ import annotations

import json
import re

import pytest
from prometheus_client import CollectorRegistry

from tests.deploy.compose_file import REPO
from tests.deploy.promql import DASHBOARD, dashboard_queries, metric_names

# The panels the dashboard must have, by the metric each one shows.
REQUIRED = {"edgeloop_deployed_map50_95", "edgeloop_static_map50_95", "edgeloop_teacher_map50_95",
            "edgeloop_agreement_map50_95", "edgeloop_deployed_map50_95_by_domain", "edgeloop_model_version",
            "edgeloop_round",
            "edgeloop_upload_bytes_total", "edgeloop_push_bytes_total", "edgeloop_planned_upload_bytes",
            "edgeloop_planned_push_bytes", "edgeloop_round_duration_seconds", "edgeloop_stage_duration_seconds",
            "edgeloop_endpoint_frames_sampled_total", "edgeloop_endpoint_frames_acked_total", "edgeloop_endpoint_spool_depth",
            "edgeloop_endpoint_model_info", "edgeloop_endpoint_inference_seconds_bucket",
            "edgeloop_endpoint_upload_bytes_total", "edgeloop_ingest_frames_rejected_total"}
_SUFFIXES = {"counter": ("_total", "_created"), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count", "_created"),
             "summary": ("", "_sum", "_count", "_created"), "info": ("_info",), "stateset": ("",), "enum": ("",),
             "unknown": ("",)}
_CLASS_TYPES = {"Counter": "counter", "Gauge": "gauge", "Histogram": "histogram", "Summary": "summary",
                "Info": "info", "Enum": "enum"}



def _registry_names(registry: CollectorRegistry) -> set[str]:
    names = set()
    for family in registry.collect():
        names |= {family.name + suffix for suffix in _SUFFIXES[family.type]}
        names |= {sample.name for sample in family.samples}
    return names


def _names_in_source() -> set[str]:
    """Metrics declared with a literal name anywhere in the packages (covers code no test instantiates)."""
    pattern = re.compile(r"\b(Counter|Gauge|Histogram|Summary|Info|Enum)\(\s*[\"']([A-Za-z_:][\w:]*)[\"']")
    names = set()
    for package in ("endpoint", "edge", "pipelines"):
        for path in (REPO / package).rglob("*.py"):
            for kind, name in pattern.findall(path.read_text()):
                base = name.removesuffix("_total") if kind == "Counter" else name
                names |= {base + suffix for suffix in _SUFFIXES[_CLASS_TYPES[kind]]}
    return names


@pytest.fixture(scope="module")
def registered(tmp_path_factory) -> set[str]:
    from edge.ingest import Ingest
    from edge.ingest_config import IngestConfig
    from edge.learner.metrics import LearnerMetrics
    from edge.store.local import LocalStore
    from endpoint.metrics import EndpointMetrics

    names = _registry_names(EndpointMetrics("cam-1", port=0, registry=CollectorRegistry()).registry)
    names |= _registry_names(LearnerMetrics(port=0).registry)
    names |= _registry_names(Ingest(IngestConfig(), store=LocalStore(tmp_path_factory.mktemp("store"))).registry)
    return names | _names_in_source()


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


@pytest.mark.parametrize("expr, names", [
    ('histogram_quantile(0.95, sum by (le, endpoint) (rate(x_ms_bucket{endpoint=~"$e"}[$__rate_interval])))',
     {"x_ms_bucket"}),
    ("max(edgeloop_round) - on(job) group_left(version) a_info offset 5m", {"edgeloop_round", "a_info"}),
    ('sum without (reason) (increase(edgeloop_ingest_frames_rejected_total{reason="queue_full"}[5m])) / 1e3',
     {"edgeloop_ingest_frames_rejected_total"}),
])
def test_metric_names_are_read_from_promql(expr, names):
    assert metric_names(expr) == names


def test_dashboard_is_well_formed(dashboard):
    assert dashboard["uid"] and dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        if panel["type"] != "row":
            assert panel.get("targets") and all(t.get("expr") and t.get("refId") for t in panel["targets"]), \
                panel["title"]


def test_every_panel_metric_is_registered_by_the_code(dashboard, registered):
    unknown = [(title, name) for title, expr in dashboard_queries(dashboard) for name in metric_names(expr)
               if name not in registered]
    assert not unknown, f"metrics no code registers: {unknown}"
    assert {"edgeloop_endpoint_frames_total", "edgeloop_ingest_frames_stored_total"} <= registered  # the collection works


def test_dashboard_has_the_required_panels(dashboard):
    used = set().union(*(metric_names(expr) for _, expr in dashboard_queries(dashboard)))
    assert REQUIRED <= used, f"no panel shows {REQUIRED - used}"
