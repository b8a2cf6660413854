"""The learner's Prometheus metrics: mAP per endpoint and round, versions, bytes and stage times.

Names follow Prometheus conventions: counters end in ``_total``, durations in ``_seconds``, sizes in ``_bytes``.
"""

from __future__ import annotations

import math
import re

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from edge.learner.round_result import RoundResult

VERSION_NUMBER = re.compile(r"^v(\d+)$")


class LearnerMetrics:
    """Set once per round and endpoint, and whenever an endpoint reports the version it runs."""

    def __init__(self, port: int = 0, registry: CollectorRegistry | None = None):
        self.registry = r = registry or CollectorRegistry()
        ep = ["endpoint"]
        self.map50 = Gauge("edgeloop_deployed_map50", "deployed student mAP50 on the endpoint's held-out frames, "
                           "last round", ep, registry=r)
        self.map50_95 = Gauge("edgeloop_deployed_map50_95", "deployed student mAP50-95 on the endpoint's held-out "
                              "frames, last round", ep, registry=r)
        self.static_map50_95 = Gauge("edgeloop_static_map50_95", "never-updated student mAP50-95, same frames", ep,
                                     registry=r)
        self.teacher_map50_95 = Gauge("edgeloop_teacher_map50_95", "teacher mAP50-95, same frames", ep, registry=r)
        self.agreement_map50_95 = Gauge("edgeloop_agreement_map50_95", "label-free: deployed student scored "
                                        "against the teacher's pseudo-labels on the round's uploads", ep, registry=r)
        self.map50_95_by_domain = Gauge("edgeloop_deployed_map50_95_by_domain", "deployed student mAP50-95 on "
                                        "each domain seen so far (forgetting)", ["endpoint", "domain"], registry=r)
        self.model_version = Gauge("edgeloop_model_version", "number of the student version the endpoint reports "
                                   "running (0: none)", ep, registry=r)
        self.planned_upload = Gauge("edgeloop_planned_upload_bytes", "frame bytes planned for the endpoint, last "
                                    "round", ep, registry=r)
        self.planned_push = Gauge("edgeloop_planned_push_bytes", "model bytes planned for the endpoint, last round",
                                  ep, registry=r)
        self.upload = Counter("edgeloop_upload_bytes", "frame bytes the endpoint uploaded", ep, registry=r)
        self.push = Counter("edgeloop_push_bytes", "model bytes pushed to the endpoint", ep, registry=r)
        self.frames = Counter("edgeloop_round_frames", "frames the endpoint uploaded, summed over rounds", ep,
                              registry=r)
        self.round = Gauge("edgeloop_round", "index of the last finished round", registry=r)
        self.rounds = Counter("edgeloop_rounds", "rounds finished", registry=r)
        self.round_seconds = Gauge("edgeloop_round_duration_seconds", "wall time of the last round", registry=r)
        self.stage_seconds = Gauge("edgeloop_stage_duration_seconds", "wall time of each stage, last round",
                                   ["stage"], registry=r)
        self.round.set(-1)
        if port:
            start_http_server(port, registry=r)

    def record(self, result: RoundResult) -> None:
        ep = result.endpoint
        self.map50.labels(endpoint=ep).set(result.map50)
        self.map50_95.labels(endpoint=ep).set(result.map50_95)
        self.static_map50_95.labels(endpoint=ep).set(result.static_map50_95)
        self.teacher_map50_95.labels(endpoint=ep).set(result.teacher_map50_95)
        # NaN: no estimate this round (no upload decoded, or the teacher found nothing), rather than last round's
        agreement = result.agreement_map50_95
        self.agreement_map50_95.labels(endpoint=ep).set(math.nan if agreement is None else agreement)
        for domain, value in result.map50_95_by_domain.items():
            self.map50_95_by_domain.labels(endpoint=ep, domain=domain).set(value)
        self.planned_upload.labels(endpoint=ep).set(result.planned_upload_bytes)
        self.planned_push.labels(endpoint=ep).set(result.planned_push_bytes)
        self.upload.labels(endpoint=ep).inc(result.upload_bytes)
        self.push.labels(endpoint=ep).inc(result.push_bytes)
        self.frames.labels(endpoint=ep).inc(result.frames_uploaded)
        self.running(ep, result.model_version)

    def round_done(self, round_index: int, seconds: float) -> None:
        self.round.set(round_index)
        self.rounds.inc()
        self.round_seconds.set(seconds)

    def stage_done(self, stage: str, seconds: float) -> None:
        self.stage_seconds.labels(stage=stage).set(seconds)

    def running(self, endpoint_id: str, version: str) -> None:
        match = VERSION_NUMBER.match(version or "")
        self.model_version.labels(endpoint=endpoint_id).set(int(match.group(1)) if match else 0)
