"""One learning round on the edge, against running endpoints: plan → upload → learn → push → evaluate.

The round talks to endpoints only through the broker (plans out, telemetry and acks
in, signed model pushes out) and reads their frames from the object store.
"""

from __future__ import annotations

import logging
import queue
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from edge.frame_index import FrameIndex, FrameRecord
from edge.learning_config import LearningConfig
from edge.map_metric import MapResult
from edge.mqtt_connection import MqttConnection
from edge.publisher import ModelPublisher
from edge.registry import ModelRegistry
from edge.replay import ReplayBuffer
from edge.scheduler.plans import to_protocol_plans
from edge.scheduler.policy import SKIP, Budget, EndpointState, Policy, PushOption, RoundRecord
from edge.store import ObjectStore
from edge.yolo_dataset import LabelledImage
from endpoint import protocol
from endpoint.protocol import Ack, ProtocolError, Telemetry
from pipelines.results import RoundResult

log = logging.getLogger(__name__)

STUDENT_NAME = "student"


@dataclass(frozen=True)
class RoundSettings:
    """How a round runs: the link budget, its duration, the frames each endpoint sees, the label source."""

    budget_bytes: int  # per endpoint and round
    round_s: float = 10.0  # link time of one round: the uplink spreads its budget over it
    frames_per_round: int = 120
    labels: tuple[str, ...] = ("oracle", "import", "teacher")
    upload_timeout_s: float = 180.0
    push_timeout_s: float = 60.0


@dataclass
class EndpointTrack:
    """What the edge knows of one endpoint across rounds."""

    endpoint_id: str
    val_sets: dict[str, list[LabelledImage]]  # domain -> held-out labelled frames
    deployed_version: str
    bytes_sent_total: int = 0
    domain: str = ""
    map_base: float = 0.0
    uploaded_bytes_domain: int = 0
    anchor_uploaded_bytes: int = 0
    anchor_map: float | None = None
    bytes_per_frame: float = 12_000.0


@dataclass
class LearningState:
    teacher_pt: Path
    student_pt: Path
    static_onnx: Path  # the first student, never updated: the baseline
    replay: ReplayBuffer
    history: list[RoundRecord] = field(default_factory=list)


class EdgeLoop:
    """Runs rounds for a set of endpoints; each round returns one ``RoundResult`` per endpoint."""

    def __init__(self, store: ObjectStore, mqtt: MqttConnection, registry: ModelRegistry, policy: Policy,
                 learning: LearningConfig, state: LearningState, tracks: list[EndpointTrack], class_names: list[str],
                 work_dir: Path, on_stage: Callable[[str], None] | None = None):
        self.store, self.mqtt, self.registry, self.policy = store, mqtt, registry, policy
        self.learning, self.state, self.class_names = learning, state, class_names
        self.tracks = {t.endpoint_id: t for t in tracks}
        self.work_dir = work_dir
        self.on_stage = on_stage or (lambda text: log.info("%s", text))  # progress lines; the lab shows them
        self._eval_cache: dict[tuple[str, str, str], MapResult] = {}  # (endpoint, domain, file) -> MapResult
        self._teacher_cache: dict[tuple[str, str, str], float] = {}  # (endpoint, domain, teacher) -> mAP50-95
        self.publisher = ModelPublisher(mqtt)
        self._telemetry: dict[str, Telemetry] = {}
        self._model_acks: queue.Queue[Ack] = queue.Queue()
        self._lock = threading.Lock()
        mqtt.subscribe(protocol.topic("+", protocol.FEATURE_TELEMETRY), self._on_telemetry, qos=0)
        mqtt.subscribe(protocol.topic("+", protocol.FEATURE_ACK), self._on_ack, qos=1)

    # --- messages from endpoints ---------------------------------------------------------------

    def _on_telemetry(self, topic: str, payload: bytes) -> None:
        try:
            t = protocol.decode(payload)
        except ProtocolError as exc:
            log.warning("bad telemetry on %s: %s", topic, exc)
            return
        if isinstance(t, Telemetry):
            with self._lock:
                self._telemetry[t.endpoint_id] = t

    def _on_ack(self, topic: str, payload: bytes) -> None:
        try:
            ack = protocol.decode(payload)
        except ProtocolError:
            return
        if isinstance(ack, Ack) and ack.model_version and not ack.frame_ids:
            self._model_acks.put(ack)

    # --- one round --------------------------------------------------------------------------------

    def run_round(self, round_index: int, domain: str, settings: RoundSettings) -> list[RoundResult]:
        started = time.perf_counter()
        for track in self.tracks.values():
            if track.domain != domain:  # a new domain: the response curves start from the deployed mAP here
                track.domain = domain
                track.map_base = self._evaluate_version(track, track.deployed_version).map50_95
                track.uploaded_bytes_domain = track.anchor_uploaded_bytes = 0
                track.anchor_map = None
        states = [self._endpoint_state(t, settings) for t in self.tracks.values()]
        allocation = self.policy.plan(Budget(settings.budget_bytes), states, self.state.history,
                                      self._push_options())
        plans = to_protocol_plans(allocation, round_index, settings.round_s, domain, settings.frames_per_round)
        for plan in plans:
            self.mqtt.publish(protocol.topic(plan.endpoint_id, protocol.FEATURE_PLAN), protocol.encode(plan),
                              qos=1, retain=True)
        log.info("round %d (%s): plans sent, %s", round_index, domain,
                 ", ".join(f"{p.endpoint_id} up {p.upload_bytes / 1e3:.0f} kB + push {p.push.name}"
                           for p in allocation.endpoints))
        self.on_stage(f"round {round_index}: endpoints stream {settings.frames_per_round} frames of {domain}")
        spent_up = self._wait_uploads(round_index, settings)
        frames = {ep: FrameIndex(self.store).frames(ep, round_index) for ep in self.tracks}
        self.on_stage(f"round {round_index}: learning from {sum(map(len, frames.values()))} frames")
        candidate = self._learn(round_index, domain, [r for rs in frames.values() for r in rs], settings.labels)
        results = []
        for plan in allocation.endpoints:
            track = self.tracks[plan.endpoint_id]
            before = self._evaluate_version(track, track.deployed_version)
            self.on_stage(f"round {round_index}: pushing to {track.endpoint_id}")
            push_kind, push_bytes = self._push(track, plan.push, candidate, settings)
            after = self._evaluate_version(track, track.deployed_version)
            static = self._evaluate_file(track, self.state.static_onnx)
            recs = frames[track.endpoint_id]
            track.uploaded_bytes_domain += sum(r.jpeg_bytes for r in recs)
            if recs:
                track.bytes_per_frame = sum(r.jpeg_bytes for r in recs) / len(recs)
            if push_kind == "full":
                track.anchor_uploaded_bytes, track.anchor_map = track.uploaded_bytes_domain, after.map50_95
            self.state.history.append(RoundRecord(
                round=round_index, endpoint_id=track.endpoint_id, policy=self.policy.name,
                budget_bytes=settings.budget_bytes, planned_upload_bytes=plan.upload_bytes,
                spent_upload_bytes=spent_up[track.endpoint_id], planned_push_bytes=plan.push_bytes,
                spent_push_bytes=push_bytes, frames_uploaded=len(recs), push=plan.push.name, push_kind=push_kind,
                push_student=STUDENT_NAME if push_kind != "skip" else "",
                uploaded_bytes_before=track.uploaded_bytes_domain - sum(r.jpeg_bytes for r in recs),
                map_base=track.map_base, anchor_uploaded_bytes=track.anchor_uploaded_bytes,
                anchor_map=track.anchor_map if track.anchor_map is not None else track.map_base,
                map_before=before.map50_95, map_after=after.map50_95,
                candidate_map=self._evaluate_version(track, candidate[0]).map50_95 if candidate else None,
                candidate_bytes=candidate[1].stat().st_size if candidate else None))
            teacher_by_domain = self._teacher_by_domain(track)
            results.append(RoundResult(
                round=round_index, endpoint=track.endpoint_id, domain=domain, policy=self.policy.name,
                budget_bytes=settings.budget_bytes, planned_upload_bytes=plan.upload_bytes,
                upload_bytes=spent_up[track.endpoint_id], planned_push_bytes=plan.push_bytes,
                push_bytes=push_bytes, push_kind=push_kind, frames_uploaded=len(recs),
                model_version=track.deployed_version, map50=after.map50, map50_95=after.map50_95,
                map50_95_before=before.map50_95, static_map50_95=static.map50_95,
                teacher_map50_95=teacher_by_domain[domain], agreement_map50_95=self._agreement(track, recs),
                teacher_map50_95_by_domain=teacher_by_domain,
                wall_s=time.perf_counter() - started))
        return results

    def _endpoint_state(self, track: EndpointTrack, settings: RoundSettings) -> EndpointState:
        deployed = self.registry.manifest(STUDENT_NAME, track.deployed_version)
        return EndpointState(
            endpoint_id=track.endpoint_id,
            map_deployed=self._evaluate_version(track, track.deployed_version).map50_95,
            map_base=track.map_base, uploaded_bytes=track.uploaded_bytes_domain, deployed_student=STUDENT_NAME,
            deployed_model_bytes=deployed.size_bytes, anchor_uploaded_bytes=track.anchor_uploaded_bytes,
            anchor_map=track.anchor_map, bytes_per_frame=track.bytes_per_frame,
            frames_per_round=settings.frames_per_round)

    def _push_options(self) -> list[PushOption]:
        latest = self.registry.latest(STUDENT_NAME)
        full = latest.size_bytes if latest else 1
        return [SKIP, PushOption("full", full, "full", STUDENT_NAME)]

    def _wait_uploads(self, round_index: int, settings: RoundSettings) -> dict[str, int]:
        """Wait until every endpoint streamed its frames and the edge acked them; return bytes sent per endpoint."""
        deadline = time.monotonic() + settings.upload_timeout_s
        pending = set(self.tracks)
        while pending and time.monotonic() < deadline:
            with self._lock:
                done = {ep for ep in pending if (t := self._telemetry.get(ep)) and t.round == round_index
                        and t.round_done}
            pending -= done
            time.sleep(0.2)
        if pending:
            log.warning("round %d: no upload report from %s in %.0f s; going on", round_index, sorted(pending),
                        settings.upload_timeout_s)
        spent = {}
        for ep, track in self.tracks.items():
            with self._lock:
                t = self._telemetry.get(ep)
            total = t.bytes_sent if t else track.bytes_sent_total
            spent[ep] = max(0, total - track.bytes_sent_total)
            track.bytes_sent_total = total
        return spent

    def _learn(self, round_index: int, domain: str, records: list[FrameRecord], label_sources: tuple[str, ...]):
        """Label the round's frames, fine-tune the teacher with replay, distill, export, quantize, register.

        Returns the registered candidate as (version, INT8 file), or None when there was nothing to learn from.
        """
        from edge.distill import distill_student
        from edge.export import export_onnx, quantize_student
        from edge.labels import LabelContext, label_frames
        from edge.teacher import finetune_teacher

        cfg = self.learning
        if not records:
            log.info("round %d: no frames uploaded; nothing to learn", round_index)
            return None
        run_dir = self.work_dir / f"round-{round_index:03d}"
        if run_dir.exists():
            shutil.rmtree(run_dir)
        ctx = LabelContext(teacher_weights=self.state.teacher_pt, teacher_conf=cfg.teacher_label_conf,
                           imgsz=cfg.imgsz)
        labelled = label_frames(self.store, records, list(label_sources), ctx)
        items = [f.item for f in labelled]
        if not items:
            log.warning("round %d: none of %d frames could be labelled", round_index, len(records))
            return None
        # The domain's frames accumulate over its rounds (bounded by the replay reservoir); other domains replay.
        self.state.replay.add(items, domain)
        domain_items = self.state.replay.items(domain)
        self.on_stage(f"round {round_index}: fine-tuning the teacher on {len(domain_items)} {domain} frames "
                    f"({len(items)} new) + replay")
        teacher = finetune_teacher(self.state.teacher_pt, domain_items, cfg, run_dir, self.class_names,
                                   replay=self.state.replay, exclude_domain=domain)
        self.state.teacher_pt = teacher.weights
        self.on_stage(f"round {round_index}: distilling the student")
        student = distill_student(self.state.student_pt, teacher.weights, domain_items, cfg, run_dir,
                                  self.class_names, replay=self.state.replay, exclude_domain=domain)
        self.state.student_pt = student.weights
        self.on_stage(f"round {round_index}: exporting and quantizing the student to INT8")
        fp32 = export_onnx(student.weights, run_dir / "student.onnx", cfg.imgsz)
        int8 = quantize_student(fp32, run_dir / "student-int8.onnx",
                                [i.image for i in items[: cfg.calibration_frames]], cfg.imgsz)
        manifest = self.registry.publish(STUDENT_NAME, int8, format="onnx-int8", input_size=(cfg.imgsz, cfg.imgsz),
                                         class_names=self.class_names,
                                         metrics={"round": float(round_index), "frames": float(len(items))})
        log.info("round %d: student %s registered (%d bytes)", round_index, manifest.version, manifest.size_bytes)
        return manifest.version, int8

    def _push(self, track: EndpointTrack, option: PushOption, candidate, settings: RoundSettings) -> tuple[str, int]:
        """Push the candidate as the plan says (delta when it is smaller); wait for the endpoint's ack."""
        if option.kind == "skip" or candidate is None:
            return "skip", 0
        version, _ = candidate
        record = self.registry.get(STUDENT_NAME, version)
        parent = self.registry.get(STUDENT_NAME, track.deployed_version)
        result = self.publisher.push(track.endpoint_id, record.manifest, record.signature, record.model_bytes,
                                     encoding="auto", parent_bytes=parent.model_bytes,
                                     parent_version=track.deployed_version)
        deadline = time.monotonic() + settings.push_timeout_s
        while time.monotonic() < deadline:
            try:
                ack = self._model_acks.get(timeout=0.5)
            except queue.Empty:
                continue
            if ack.endpoint_id == track.endpoint_id and ack.model_version == version:
                if ack.ok:
                    track.deployed_version = version
                else:
                    log.warning("%s refused %s: %s", track.endpoint_id, version, ack.reason)
                break
        else:
            log.warning("%s did not ack %s in %.0f s", track.endpoint_id, version, settings.push_timeout_s)
        return result.encoding, result.bytes_sent

    # --- evaluation of the exact deployed files ---------------------------------------------------

    AGREEMENT_FRAMES = 16

    def _agreement(self, track: EndpointTrack, records: list[FrameRecord]) -> float | None:
        """Label-free: the deployed student against the teacher's pseudo-labels on this round's uploads."""
        from edge.evaluate import agreement

        if not records:
            return None
        images = [self.store.get(r.jpeg_key) for r in records[: self.AGREEMENT_FRAMES]]
        path = self._deployed_file(track.deployed_version)
        return agreement(path, self.state.teacher_pt, images, self.learning.imgsz,
                         self.learning.teacher_label_conf).map50_95

    def _teacher_by_domain(self, track: EndpointTrack) -> dict[str, float]:
        """The current teacher on each domain this endpoint has held-out frames of (cached per teacher file)."""
        from edge.evaluate import evaluate_pt

        cache = self._teacher_cache
        out = {}
        for domain, items in track.val_sets.items():
            key = (track.endpoint_id, domain, str(self.state.teacher_pt))
            if key not in cache:
                cache[key] = evaluate_pt(self.state.teacher_pt, items, self.learning.imgsz).map50_95
            out[domain] = cache[key]
        log.info("teacher %s on %s: %s", Path(self.state.teacher_pt).parent.name, track.endpoint_id,
                 ", ".join(f"{d} {m:.3f}" for d, m in out.items()))
        return out

    def _deployed_file(self, version: str) -> Path:
        path = self.work_dir / "deployed" / f"{version}.onnx"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(self.registry.get(STUDENT_NAME, version).model_bytes)
        return path

    def _evaluate_version(self, track: EndpointTrack, version: str):
        return self._evaluate_file(track, self._deployed_file(version))

    def _evaluate_file(self, track: EndpointTrack, path: Path):
        from edge.evaluate import evaluate_onnx

        key = (track.endpoint_id, track.domain, str(path))
        cache = self._eval_cache
        if key not in cache:
            cache[key] = evaluate_onnx(path, track.val_sets[track.domain])
        return cache[key]
