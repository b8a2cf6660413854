"""The learner role: one per fleet. It runs rounds on its schedule, keeps endpoints on their version, serves metrics.

``edgeloop edge`` runs it as a service, ``edgeloop round`` runs one round of it now, and the lab runs it
with a broker, a store and endpoint processes around it: there is one round driver.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from edge.learner.config import LearnerConfig
from edge.learner.fleet import FleetView
from edge.learner.metrics import LearnerMetrics
from edge.learner.pusher import Pusher
from edge.learner.reconcile import Reconciler
from edge.learner.round_driver import RoundDriver
from edge.learner.round_settings import EndpointSpec, RoundSettings
from edge.learner.round_result import RoundResult
from edge.learner.setup import STUDENT_NAME, FirstModels, initial_state, open_registry, signing_key
from edge.learner.state import load_state
from edge.learning_config import LearningConfig
from edge.mqtt_connection import MqttConnection
from edge.scheduler.policies import make_policy
from edge.store import ObjectStore, open_store

log = logging.getLogger(__name__)

FIRST_REPORT_WAIT_S = 3.0


class Learner:
    """Connects, bootstraps once, then runs rounds; ``start()`` before ``run_round()`` or ``serve()``."""

    def __init__(self, config: LearnerConfig, *, learning: LearningConfig | None = None,
                 store: ObjectStore | None = None, first: FirstModels | None = None,
                 val_sets: dict[str, dict] | None = None, metrics: LearnerMetrics | None = None,
                 on_stage: Callable[[str], None] | None = None):
        self.config = config
        self.learning = learning or config.learning.model_copy(update={"work_dir": config.state_dir / "work"})
        self.store = store or open_store(config.store)
        self.first = first
        self.val_sets = val_sets
        self.metrics = metrics or LearnerMetrics(config.metrics_port)
        self.on_stage = on_stage or (lambda text: log.info("%s", text))
        self.stop_event = threading.Event()
        self.endpoint_ids = [e.id for e in config.endpoints]
        self.mqtt: MqttConnection | None = None
        self.reconciler: Reconciler | None = None

    # --- life cycle -----------------------------------------------------------------------------

    def start(self) -> "Learner":
        c = self.config
        _, self.public_key = signing_key(c.state_dir, c.public_key_dir)
        self.registry = open_registry(self.store, c.state_dir)
        first = self.first
        if first is None and c.bootstrap is not None and load_state(c.state_dir) is None:  # read only when it is used
            first = self._first_from_config()
        self.state, self.bootstrap_cached = initial_state(c.state_dir, self.registry, self.learning, first,
                                                          self.endpoint_ids, c.fleet, self.on_stage)
        self.mqtt = MqttConnection.from_config(c.broker, default_client_id="edgeloop-learner")
        self.fleet = FleetView(self.mqtt, self.endpoint_ids, on_version=self._on_version,
                               on_online=lambda ep: self.reconciler and self.reconciler.reconnected(ep))
        self.pusher = Pusher(self.mqtt, self.registry, self.fleet, STUDENT_NAME)
        self.mqtt.start()
        self.driver = RoundDriver(self.store, self.mqtt, self.registry, make_policy(c.policy), self.learning,
                                  self.state, c.state_dir, self._endpoint_specs(), self.fleet, self.pusher,
                                  fleet_group=c.fleet, on_stage=lambda text: self.on_stage(text),
                                  on_stage_done=self.metrics.stage_done,
                                  stop_event=self.stop_event, keep_versions=c.keep_versions)
        deadline = time.monotonic() + FIRST_REPORT_WAIT_S  # retained statuses arrive right after subscribing
        for endpoint_id in self.endpoint_ids:
            self.fleet.wait_running(endpoint_id, max(0.0, deadline - time.monotonic()))
        self.reconciler = Reconciler(self.fleet, self.pusher, lambda ep: self.state.tracks[ep].target_version,
                                     self.endpoint_ids, c.push_timeout_s).start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        if self.reconciler is not None:
            self.reconciler.stop()
        if self.mqtt is not None:
            self.mqtt.stop()

    @property
    def first_version(self) -> str:
        return self.registry.versions(STUDENT_NAME)[0]

    # --- rounds -------------------------------------------------------------------------------

    def settings(self, **overrides) -> RoundSettings:
        c = self.config
        base = dict(budget_bytes=int(c.budget_kbps * 1000 / 8 * c.round_s), round_s=c.round_s,
                    frames_per_round=c.frames, labels=tuple(c.labels), collect_s=c.round_s, min_frames=c.min_frames,
                    drift_agreement_drop=c.drift_agreement_drop, wait_for_frames=True,
                    push_timeout_s=c.push_timeout_s, push_regressions=c.push_regressions,
                    last_round=c.rounds - 1 if c.rounds else None)
        return RoundSettings(**{**base, **overrides})

    def run_round(self, domain: str | None = None, settings: RoundSettings | None = None) -> list[RoundResult]:
        """Run (or finish) the next round now."""
        started = time.monotonic()
        results = self.driver.run_round(domain or self.config.domain, settings or self.settings())
        for result in results:
            self.metrics.record(result)
        if results:
            self.metrics.round_done(results[0].round, time.monotonic() - started)
        return results

    def serve(self) -> None:
        """Rounds one after another until stopped (or ``config.rounds`` are done)."""
        from edge.learner.collect import LearnerStopped

        while not self.stop_event.is_set():
            if self.config.rounds and self.state.next_round >= self.config.rounds:
                log.info("learner: %d rounds done; serving metrics and versions until stopped", self.config.rounds)
                self.stop_event.wait()
                return
            try:
                results = self.run_round()
            except LearnerStopped:
                return
            for r in results:
                log.info("round %d %s: %s mAP50-95 %.3f (static %.3f, teacher %.3f), up %d B, push %s %d B", r.round,
                         r.endpoint, r.model_version, r.map50_95, r.static_map50_95, r.teacher_map50_95,
                         r.upload_bytes, r.push_kind, r.push_bytes)

    # --- keeping endpoints on their version ---------------------------------------------------

    def _on_version(self, endpoint_id: str, version: str) -> None:
        self.metrics.running(endpoint_id, version)
        track = self.state.tracks.get(endpoint_id)
        if track is not None and version:
            track.running_version = version
        if self.reconciler is not None:
            self.reconciler.kick()

    # --- configuration --------------------------------------------------------------------------

    def _first_from_config(self) -> FirstModels:
        boot = self.config.bootstrap
        return FirstModels(boot.items("train"), boot.items("val"), boot.class_names(), boot.domain())

    def _endpoint_specs(self) -> list[EndpointSpec]:
        if self.val_sets is not None:
            return [EndpointSpec(ep, self.val_sets.get(ep, {})) for ep in self.endpoint_ids]
        return [EndpointSpec(e.id, {self.config.domain: e.val.items("val")} if e.val else {})
                for e in self.config.endpoints]
