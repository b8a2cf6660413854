"""One learning round, stage by stage: plan → collect → teacher → student → register → push → score.

The state is saved after every stage (``LearnerState.progress``), so a learner killed at any
point resumes the round at the stage it had not finished: frames stay in the store, a version
registered before the kill is adopted rather than published again, and an endpoint that already
reports running the candidate is not pushed twice.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path
from typing import Callable

from edge.frame_index import FrameIndex, FrameRecord
from edge.learner.collect import Collector
from edge.learner.config import KEEP_VERSIONS
from edge.learner.fleet import FleetView
from edge.learner.push_gate import regression
from edge.learner.push_options import push_option_for, push_options, sparse_option_name, trained_fraction
from edge.learner.pusher import Pusher
from edge.learner.retention import forget_after_round
from edge.learner.round_result import RoundResult
from edge.learner.round_settings import EndpointSpec, RoundSettings
from edge.learner.scoring import Scorer
from edge.learner.setup import STUDENT_NAME
from edge.learner.sparse_student import SPARSE_BASE, sparse_int8_student
from edge.learner.state import (LearnerState, PlannedEndpoint, PushDone, RoundProgress, Stage, TrackState,
                                read_history, save_state)
from edge.learning_config import LearningConfig
from edge.map_metric import MapResult
from edge.registry import ModelRegistry
from edge.replay import ReplayBuffer
from edge.scheduler.plans import to_protocol_plans
from edge.training_progress import report_training_to
from edge.scheduler.policy import Allocation, Budget, EndpointState, Policy, PushOption, RoundRecord
from edge.store import ObjectStore
from edge.yolo_dataset import LabelledImage
from endpoint.wire import protocol

log = logging.getLogger(__name__)


class RoundDriver:
    """Runs (or resumes) the state's next round for a set of endpoints; one ``RoundResult`` per endpoint."""

    def __init__(self, store: ObjectStore, mqtt, registry: ModelRegistry, policy: Policy, learning: LearningConfig,
                 state: LearnerState, state_dir: Path, endpoints: list[EndpointSpec], fleet: FleetView,
                 pusher: Pusher, fleet_group: str = "default",
                 on_stage: Callable[[str], None] | None = None,
                 on_stage_done: Callable[[str, float], None] | None = None,
                 stop_event: threading.Event | None = None, keep_versions: int = KEEP_VERSIONS):
        self.store, self.mqtt, self.registry, self.policy = store, mqtt, registry, policy
        self.keep_versions = keep_versions
        self.learning, self.state, self.state_dir = learning, state, Path(state_dir)
        self.endpoints = {e.endpoint_id: e for e in endpoints}
        self.fleet, self.pusher, self.fleet_group = fleet, pusher, fleet_group
        self.on_stage = on_stage or (lambda text: log.info("%s", text))
        self.on_stage_done = on_stage_done or (lambda stage, seconds: None)
        self.stop_event = stop_event or threading.Event()
        # the folder the saved state names: a kill after a stage's save never sees that stage's additions twice
        self.replay = ReplayBuffer.load(state.replay_dir, learning.replay_capacity_per_domain, seed=learning.seed)
        # the scorer's size is the teacher's: it predicts with the teacher; students are ONNX files with their own
        self.scorer = Scorer(registry, STUDENT_NAME, self.state_dir / "work", learning.teacher_size(),
                             learning.teacher_label_conf)
        for endpoint_id in self.endpoints:
            state.add_track(endpoint_id)
        self._registered: set[str] = set()  # student versions the registry holds, as last listed

    # --- the round -------------------------------------------------------------------------------

    def run_round(self, domain: str, settings: RoundSettings) -> list[RoundResult]:
        state = self.state
        if state.progress is None or state.progress.round != state.next_round:
            self._plan(domain, settings)
        else:
            log.info("resuming round %d after stage %s", state.progress.round, state.progress.stage)
            self._publish_plans(settings)
        p = state.progress
        if not state.stage_done("collected"):
            self._timed("collected", lambda: self._collect(settings))
        records = [r for ep in self.endpoints for r in FrameIndex(self.store).frames(ep, p.round)]
        with report_training_to(lambda text: self.on_stage(f"round {p.round}: {text}")):
            if not state.stage_done("teacher"):
                self._timed("teacher", lambda: self._teacher(records, settings))
            if not state.stage_done("student"):
                self._timed("student", lambda: self._student(settings))
        if not state.stage_done("registered"):
            self._timed("registered", self._register)
        if not state.stage_done("pushed"):
            self._timed("pushed", lambda: self._push_all(settings))
        return self._finish(records, settings)

    def _timed(self, stage: Stage, work: Callable[[], None]) -> None:
        started = time.monotonic()
        work()
        seconds = time.monotonic() - started
        self.state.progress.stage = stage
        self.state.progress.stage_seconds[stage] = round(seconds, 3)
        save_state(self.state_dir, self.state)
        self.on_stage_done(stage, seconds)

    def _plan(self, domain: str, settings: RoundSettings) -> None:
        state, round_index = self.state, self.state.next_round
        for track in state.tracks.values():
            if track.domain != domain and domain in self._val_sets(track.endpoint_id):
                track.domain = domain  # a new domain: the response curves start from the deployed mAP here
                track.map_base = self._map(track, self._deployed(track)).map50_95
                track.uploaded_bytes_domain = track.anchor_uploaded_bytes = 0
                track.anchor_map = None
            elif track.domain != domain:
                track.domain = domain
        states = [self._endpoint_state(t, settings) for t in self._tracks()]
        budget = Budget(settings.budget_bytes, rounds_left=settings.rounds_left(round_index))
        allocation = self.policy.plan(budget, states, self._history(), self._push_options())
        state.progress = RoundProgress(round=round_index, domain=domain, stage="planned", started_unix_s=time.time(),
                                       plans=[PlannedEndpoint.of(p) for p in allocation.endpoints],
                                       versions_before={t.endpoint_id: self._deployed(t) for t in self._tracks()})
        save_state(self.state_dir, state)
        self._publish_plans(settings)
        log.info("round %d (%s): plans sent, %s", round_index, domain,
                 ", ".join(f"{p.endpoint_id} up {p.upload_bytes / 1e3:.0f} kB + push {p.push.name}"
                           for p in allocation.endpoints))

    def _publish_plans(self, settings: RoundSettings) -> None:
        p = self.state.progress
        allocation = Allocation(self.policy.name, Budget(settings.budget_bytes), tuple(e.to_plan() for e in p.plans))
        for plan in to_protocol_plans(allocation, p.round, settings.round_s, p.domain, settings.frames_per_round):
            self.mqtt.publish(protocol.topic(plan.endpoint_id, protocol.FEATURE_PLAN), protocol.encode(plan),
                              qos=1, retain=True)

    def _collect(self, settings: RoundSettings) -> None:
        p = self.state.progress
        self.on_stage(f"round {p.round}: endpoints upload {p.domain} frames")
        collector = Collector(self.store, self.fleet, list(self.endpoints), self.stop_event)
        drifted = lambda: self._drifted(settings)  # noqa: E731
        p.spent_upload_bytes = collector.wait(p.round, settings, self.state.tracks, drifted, p.started_unix_s)

    def _drifted(self, settings: RoundSettings) -> bool:
        """Label-free drift: the deployed student agrees with the teacher much less than it did last round."""
        if settings.drift_agreement_drop <= 0:
            return False
        p = self.state.progress
        for ep in self.endpoints:
            last = self.state.last_agreement.get(ep)
            records = FrameIndex(self.store).frames(ep, p.round)[:16]
            if last is None or len(records) < 8:
                continue
            now = self.scorer.agreement(self._deployed(self.state.tracks[ep]), self.state.teacher_pt,
                                        [self.store.get(r.jpeg_key) for r in records])
            if now is not None and now < last - settings.drift_agreement_drop:
                log.info("round %d: drift on %s: agreement %.3f, last round %.3f", p.round, ep, now, last)
                return True
        return False

    def _teacher(self, records: list[FrameRecord], settings: RoundSettings) -> None:
        from edge.labels import label_frames
        from edge.teacher import finetune_teacher

        p, cfg = self.state.progress, self.learning
        frames = label_frames(self.store, records, list(settings.labels), self._label_context())
        items = [f.item for f in frames]
        p.labelled_frames = len(items)
        p.pseudo_labelled = len(items) < len(records) or any(f.source == "teacher" for f in frames)
        if not items:
            log.warning("round %d: none of %d frames could be labelled; the models stay", p.round, len(records))
            return
        # The domain's frames accumulate over its rounds (bounded by the replay reservoir); other domains replay.
        self.replay.add(items, p.domain)
        domain_items = self.replay.items(p.domain)
        self.on_stage(f"round {p.round}: fine-tuning the teacher on {len(domain_items)} {p.domain} frames "
                      f"({len(items)} new) + replay")
        teacher = finetune_teacher(self.state.teacher_pt, domain_items, cfg, self._run_dir(), self.state.class_names,
                                   replay=self.replay, exclude_domain=p.domain)
        self.state.teacher_pt = self._keep(teacher.weights, "teacher")
        # A new folder each round; the state saved after this stage switches to it, and _prune drops the old one.
        replay_dir = self.state_dir / f"replay-r{p.round:03d}"
        shutil.rmtree(replay_dir, ignore_errors=True)
        self.replay.save(replay_dir)
        self.state.replay_dir = replay_dir

    def _label_context(self):
        """The label sources' context: the learner's current teacher and its threshold and input size."""
        from edge.labels import LabelContext

        cfg = self.learning
        return LabelContext(teacher_weights=self.state.teacher_pt, teacher_conf=cfg.teacher_label_conf,
                            imgsz=cfg.teacher_size())

    def _student(self, settings: RoundSettings) -> None:
        from edge.distill import distill_student
        from edge.learner.relabel import relabel_for_student
        from edge.sparse_update import sparse_update_for

        p = self.state.progress
        if not p.labelled_frames:
            return
        self.on_stage(f"round {p.round}: distilling the student")
        # sparse when a plan chose the sparse push; an endpoint that planned the dense one gets the smaller push
        sparse = sparse_update_for(self.learning) if self._sparse_planned() else None
        if sparse is not None:  # _register requantizes on this base's INT8 grid
            shutil.copyfile(self.state.student_pt, self._run_dir() / SPARSE_BASE)
        items = self.replay.items(p.domain)
        if p.pseudo_labelled and "teacher" in settings.labels:
            items = relabel_for_student(items, self.store, self.endpoints, read_history(self.state_dir), p.domain,
                                        p.round, settings.labels, self._label_context(),
                                        self.learning.teacher_relabel_frames)
        student = distill_student(self.state.student_pt, self.state.teacher_pt, items,
                                  self.learning, self._run_dir(), self.state.class_names, replay=self.replay,
                                  exclude_domain=p.domain, sparse=sparse)
        self.state.student_pt = self._keep(student.weights, "student")

    def _register(self) -> None:
        from edge.export import export_onnx, student_for_endpoint

        p, cfg = self.state.progress, self.learning
        if not p.labelled_frames:
            return
        latest = self.registry.latest(STUDENT_NAME)
        if latest is not None and latest.metrics.get("round") == float(p.round):
            # Published just before a kill: adopt it, so no version number is skipped or used twice.
            p.candidate_version = latest.version
            log.info("round %d: adopting %s, registered before the restart", p.round, latest.version)
            return
        self.on_stage(f"round {p.round}: exporting and quantizing the student to INT8")
        run_dir = self._run_dir()
        fp32 = export_onnx(self.state.student_pt, run_dir / "student.onnx", cfg.imgsz)
        calibration = self.replay.calibration(p.domain, cfg.calibration_frames, cfg.replay_fraction)
        shipped, model_format = student_for_endpoint(fp32, run_dir / "student-endpoint.onnx",
                                                     [i.image for i in calibration], cfg.imgsz, cfg.student_precision)
        shipped, fraction = sparse_int8_student(self.registry, cfg, latest, fp32, shipped, run_dir)
        manifest = self.registry.publish(STUDENT_NAME, shipped, format=model_format, input_size=(cfg.imgsz, cfg.imgsz),
                                         class_names=self.state.class_names,
                                         metrics={"round": float(p.round), "frames": float(p.labelled_frames),
                                                  "sparse_fraction": fraction},
                                         fleet=self.fleet_group)
        p.candidate_version = manifest.version
        log.info("round %d: student %s registered (%d bytes)", p.round, manifest.version, manifest.size_bytes)

    def _push_all(self, settings: RoundSettings) -> None:
        p = self.state.progress
        # pushed before a restart and not acked: one wait of the ack timeout for all of them, not one each
        installing_deadline = time.monotonic() + settings.push_timeout_s
        for planned in p.plans:
            ep = planned.endpoint_id
            if (done := p.pushes.get(ep)) is not None:  # pushed before a restart
                if done.kind in ("full", "delta") and not done.acked and \
                        self._runs(ep, done.version, installing_deadline):
                    self._pushed(ep, done.model_copy(update={"acked": True}))  # its ack came while we were down
                continue
            track = self.state.tracks[ep]
            if planned.push["kind"] == "skip" or not p.candidate_version:
                p.pushes[ep] = PushDone(kind="skip", bytes=0, version="")
            elif not settings.push_regressions and (worse := self._worse_than_deployed(track, p.candidate_version)):
                log.warning("round %d: not pushing to %s: %s", p.round, ep, worse)
                p.pushes[ep] = PushDone(kind="skip", bytes=0, version="")
            elif self.fleet.running(ep) is None or not self.fleet.online(ep):
                # Never reported, or gone: none would ack; the reconciler pushes when it is back (and it reports).
                log.warning("round %d: %s is offline or has not reported; its push waits for it", p.round, ep)
                track.target_version = p.candidate_version
                p.pushes[ep] = PushDone(kind="pending", bytes=0, version=p.candidate_version)
            else:
                self.on_stage(f"round {p.round}: pushing {p.candidate_version} to {ep}")
                # on record once sent: killed before the ack, a restart finds the push, and the endpoint's report
                sent = lambda kind, n, ep=ep: self._pushed(ep, PushDone(kind=kind, bytes=n,  # noqa: E731
                                                                         version=p.candidate_version))
                with self.pusher.lock:  # the reconciler sees the new target only once this push is done
                    track.target_version = p.candidate_version
                    outcome = self.pusher.push(ep, p.candidate_version, settings.push_timeout_s, on_sent=sent)
                self._pushed(ep, PushDone(kind=outcome.kind, bytes=outcome.bytes, version=p.candidate_version,
                                          acked=outcome.acked))
            save_state(self.state_dir, self.state)

    def _runs(self, endpoint_id: str, version: str, deadline: float) -> bool:
        """After a restart, whether the endpoint runs ``version``, sent before it; online, it may still be installing
        it, and has until ``deadline`` (``time.monotonic``) to say so."""
        if not self.fleet.online(endpoint_id):
            return self.fleet.running(endpoint_id) == version
        return self.fleet.wait_version(endpoint_id, version, max(0.0, deadline - time.monotonic()))

    def _pushed(self, endpoint_id: str, done: PushDone) -> None:
        """Record a push to ``endpoint_id`` in the saved state; an acked one sets what the next plan expects."""
        self.state.progress.pushes[endpoint_id] = done
        if done.acked:  # the option's name reads the version's manifest: only for a push that counts
            option = push_option_for(trained_fraction(self.registry, done.version))
            if done.kind == "delta" or option == "full":  # a sparse push sent whole is rare
                self.state.push_bytes_by_option[option] = done.bytes
        save_state(self.state_dir, self.state)

    def _worse_than_deployed(self, track: TrackState, candidate: str) -> str | None:
        """Why ``candidate`` must not replace what the endpoint runs (``edge.learner.push_gate``), or None."""
        # Running nothing yet (late, or reflashed), it gets its track's version when it connects: gate against that.
        running = self._deployed(track)
        deployed = running or track.target_version
        if not deployed or deployed == candidate or not self._val(track):
            return None
        return regression(candidate, self._map(track, candidate).map50_95, deployed,
                          self._map(track, deployed).map50_95, track.domain,
                          "which it runs" if running else "which it is due (it runs no model yet)")

    def _finish(self, records: list[FrameRecord], settings: RoundSettings) -> list[RoundResult]:
        from edge.learner.round_finish import finish_round

        results = finish_round(self, records, settings)
        p = self.state.progress
        self.state.next_round, self.state.progress = p.round + 1, None
        save_state(self.state_dir, self.state)
        forget_after_round(self, p, self.keep_versions)
        return results

    def forget_registered(self) -> None:
        """Versions may have left the registry: the next report of a version looks it up again."""
        self._registered = set()

    # --- helpers --------------------------------------------------------------------------------

    def _tracks(self) -> list[TrackState]:
        return [self.state.tracks[ep] for ep in self.endpoints]

    def _val_sets(self, endpoint_id: str) -> dict[str, list[LabelledImage]]:
        return self.endpoints[endpoint_id].val_sets

    def _val(self, track: TrackState) -> list[LabelledImage]:
        return self._val_sets(track.endpoint_id).get(track.domain, [])

    def _deployed(self, track: TrackState) -> str:
        """What the endpoint runs, by its own word (this session's report, else the last one saved); '' for a model
        the registry never held (its own file, or the config's default name): there is nothing to score or size."""
        running = self.fleet.running(track.endpoint_id)
        version = running if running is not None else track.running_version
        if version and version not in self._registered:
            self._registered = set(self.registry.versions(STUDENT_NAME))  # new since the last look, perhaps
            if version not in self._registered:
                return ""
        return version

    def _by_domain(self, endpoint_id: str, version: str) -> dict[str, float]:
        """The deployed student on each domain learnt so far (the replay holds every one) and this round's."""
        seen = {*self.replay.domains(), self.state.progress.domain}
        return {domain: self.scorer.version(endpoint_id, domain, items, version).map50_95
                for domain, items in self._val_sets(endpoint_id).items() if domain in seen and items and version}

    def _map(self, track: TrackState, version: str):
        if not version or not self._val(track):
            return NOT_SCORED
        return self.scorer.version(track.endpoint_id, track.domain, self._val(track), version)

    def _endpoint_state(self, track: TrackState, settings: RoundSettings) -> EndpointState:
        version = self._deployed(track)
        size = self.registry.manifest(STUDENT_NAME, version).size_bytes if version else 0
        return EndpointState(
            endpoint_id=track.endpoint_id, map_deployed=self._map(track, version).map50_95,
            map_base=track.map_base, uploaded_bytes=track.uploaded_bytes_domain, deployed_student=STUDENT_NAME,
            deployed_model_bytes=size, anchor_uploaded_bytes=track.anchor_uploaded_bytes,
            anchor_map=track.anchor_map, bytes_per_frame=track.bytes_per_frame,
            frames_per_round=settings.frames_per_round or None)

    def _push_options(self) -> list[PushOption]:
        return push_options(self.registry.latest(STUDENT_NAME), self.learning, self.state.push_bytes_by_option)

    def _sparse_planned(self) -> bool:
        name = sparse_option_name(self.learning)
        return name is not None and any(plan.push.get("name") == name for plan in self.state.progress.plans)

    def _history(self) -> list[RoundRecord]:
        return read_history(self.state_dir, skip_domain=self.state.first_domain)

    def _run_dir(self) -> Path:
        run_dir = self.state_dir / "work" / f"round-{self.state.progress.round:03d}"
        run_dir.mkdir(parents=True, exist_ok=True)
        return run_dir

    def _keep(self, weights: Path, role: str) -> Path:
        """Copy a stage's weights out of its run folder, under a name that says which round made them."""
        kept = self.state_dir / "models" / f"{role}-r{self.state.progress.round:03d}.pt"
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(weights, kept.with_suffix(".tmp"))
        kept.with_suffix(".tmp").replace(kept)
        return kept


NOT_SCORED = MapResult(0.0, 0.0)  # no held-out frames for this endpoint and domain, or no model
