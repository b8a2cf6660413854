"""The learner's Prometheus gauges follow each round's record."""

from __future__ import annotations

import math

from edge.learner.metrics import LearnerMetrics
from edge.learner.round_result import RoundResult


def result(agreement: float | None) -> RoundResult:
    return RoundResult(round=1, endpoint="cam-1", domain="dusk", policy="adaptive", budget_bytes=1,
                       planned_upload_bytes=1, upload_bytes=1, planned_push_bytes=0, push_bytes=0, push_kind="skip",
                       frames_uploaded=1, model_version="v0002", map50=0.5, map50_95=0.3, map50_95_before=0.2,
                       static_map50_95=0.1, teacher_map50_95=0.6, agreement_map50_95=agreement, wall_s=1.0)


def test_a_round_without_an_agreement_estimate_shows_none_rather_than_the_last_one():
    metrics = LearnerMetrics(port=0)
    value = lambda: metrics.registry.get_sample_value("edgeloop_agreement_map50_95", {"endpoint": "cam-1"})  # noqa: E731
    metrics.record(result(0.4))
    assert value() == 0.4
    metrics.record(result(None))  # no upload decoded, or the teacher found nothing
    assert math.isnan(value())
