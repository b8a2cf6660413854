"""The learner's typed state, persisted after every stage so a restart resumes where the last one stopped."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from edge.scheduler.policy import EndpointPlan, PushOption, RoundRecord
from endpoint.wire.durable_file import write_durably
from endpoint.wire.manifest import version_number

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
HISTORY_FILE = "history.jsonl"
ROUNDS_FILE = "rounds.jsonl"

# A round's stages in order; the state names the last one completed.
Stage = Literal["planned", "collected", "teacher", "student", "registered", "pushed"]
STAGES: tuple[Stage, ...] = ("planned", "collected", "teacher", "student", "registered", "pushed")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrackState(_Strict):
    """What the edge knows of one endpoint across rounds (its own report wins over the edge's memory)."""

    endpoint_id: str
    running_version: str = Field("", description="the version the endpoint last reported running")
    target_version: str = Field("", description="the version the edge wants it to run")
    bytes_sent_total: int = Field(0, description="the endpoint's upload counter at the end of the last round")
    domain: str = Field("", description="the domain of its last round")
    map_base: float = Field(0.0, description="deployed mAP50-95 when that domain began (the curves' anchor)")
    uploaded_bytes_domain: int = Field(0, description="frame bytes of that domain uploaded so far")
    anchor_uploaded_bytes: int = Field(0, description="uploaded bytes at the domain's last acked full push")
    anchor_map: float | None = Field(None, description="deployed mAP50-95 after that push (None: map_base)")
    bytes_per_frame: float = Field(12_000.0, description="mean bytes of one uploaded frame, last round")


class PlannedEndpoint(_Strict):
    """One endpoint's share of the round's link, as planned (kept so a resumed round pushes what it planned)."""

    endpoint_id: str
    upload_bytes: int
    push: dict = Field(description="the PushOption's fields")
    sampler: str = "uniform"
    sample_rate: float = 1.0
    expected_map: float | None = None

    @classmethod
    def of(cls, plan: EndpointPlan) -> "PlannedEndpoint":
        return cls(endpoint_id=plan.endpoint_id, upload_bytes=plan.upload_bytes, push=asdict(plan.push),
                   sampler=plan.sampler, sample_rate=plan.sample_rate, expected_map=plan.expected_map)

    def to_plan(self) -> EndpointPlan:
        return EndpointPlan(self.endpoint_id, self.upload_bytes, PushOption(**self.push), self.sampler,
                            self.sample_rate, self.expected_map)


class PushDone(_Strict):
    """What a round's push to one endpoint did."""

    kind: Literal["skip", "full", "delta", "pending"] = Field(
        description="pending: the endpoint never reported, so the reconciler pushes when it does")
    bytes: int = Field(description="bytes that crossed the link")
    version: str = Field(description="the version pushed ('' for skip)")
    acked: bool = Field(False, description="the endpoint acked it ok (runs it)")


class RoundProgress(_Strict):
    """The round in flight: which stage it reached and what each finished stage produced."""

    round: int = Field(description="the round's index")
    domain: str = Field(description="the domain label of the round")
    stage: Stage = Field(description="the last stage completed")
    started_unix_s: float = Field(description="when the plans went out (wall clock)")
    plans: list[PlannedEndpoint] = Field(description="each endpoint's share of the link, as planned")
    versions_before: dict[str, str] = Field(default_factory=dict, description="what each endpoint ran at the plan")
    spent_upload_bytes: dict[str, int] = Field(default_factory=dict, description="endpoint -> frame bytes sent")
    labelled_frames: int = Field(0, description="frames of this round that got labels")
    pseudo_labelled: bool = Field(False, description="some frames of this round had no ground truth: the "
                                                 "teacher labelled them, or left them unlabelled")
    candidate_version: str = Field("", description="the student registered this round ('' if none)")
    pushes: dict[str, PushDone] = Field(default_factory=dict, description="endpoint -> push sent this round")
    stage_seconds: dict[str, float] = Field(default_factory=dict, description="wall time of each stage done")


class LearnerState(_Strict):
    """Everything the learner needs to carry on after a restart; replay and history live beside it."""

    v: Literal[1] = Field(1, description="state format version")
    next_round: int = Field(0, description="the round to run next (or the one in progress)")
    class_names: list[str] = Field(description="label of each class id")
    first_domain: str = Field(description="the domain the first models were trained on")
    teacher_pt: Path = Field(description="the current teacher's weights")
    student_pt: Path = Field(description="the current student's weights")
    static_onnx: Path = Field(description="the first student, never updated: the baseline")
    replay_dir: Path = Field(description="the replay buffer's folder; a new one per round, switched by this file")
    tracks: dict[str, TrackState] = Field(default_factory=dict, description="endpoint -> what the edge knows")
    progress: RoundProgress | None = Field(None, description="the round in flight; None between rounds")
    last_agreement: dict[str, float] = Field(default_factory=dict,
                                             description="endpoint -> label-free agreement of its last round")
    push_bytes_by_option: dict[str, int] = Field(
        default_factory=dict, description="push option name -> bytes its last push sent; what the next plan expects")

    def add_track(self, endpoint_id: str) -> None:
        """A track for an endpoint the config names, if it has none: one added after the first start is due the
        newest version the fleet is due, so the reconciler pushes it a model as soon as it connects."""
        if endpoint_id not in self.tracks:
            due = max((t.target_version for t in self.tracks.values() if t.target_version), default="",
                      key=version_number)  # v10000 after v9999
            self.tracks[endpoint_id] = TrackState(endpoint_id=endpoint_id, target_version=due)

    def stage_done(self, stage: Stage) -> bool:
        """Did the round in flight already complete ``stage``?"""
        p = self.progress
        return p is not None and STAGES.index(p.stage) >= STAGES.index(stage)


def load_state(state_dir: Path) -> LearnerState | None:
    path = Path(state_dir) / STATE_FILE
    if not path.exists():
        return None
    return LearnerState.model_validate_json(path.read_bytes())


def save_state(state_dir: Path, state: LearnerState) -> None:
    """Atomic and durable: a kill -9 or power cut leaves the old state or the new one, never half of one."""
    Path(state_dir).mkdir(parents=True, exist_ok=True)
    write_durably(Path(state_dir) / STATE_FILE, state.model_dump_json(indent=1).encode())


def read_history(state_dir: Path, skip_domain: str | None = None) -> list[RoundRecord]:
    """The scheduler's records, less those of ``skip_domain``.

    The learner skips its first domain: the bootstrap learnt it before any upload, so its rounds start far
    from the curves' origin (no data, mAP at the domain's start) and would teach the fit that data saturates at
    once. Measured on `make lab`'s history: with round 0 (day) in, the fit saturated after ~12 frames and planned
    skips for the rest of dusk; without it, pushes.
    """
    path = Path(state_dir) / HISTORY_FILE
    if not path.exists():
        return []
    records = [RoundRecord.from_dict(row) for row in read_lines(path)]
    return [r for r in records if skip_domain is None or r.domain != skip_domain]


def read_lines(path: Path) -> list[dict]:
    """The records of a ``.jsonl`` file; a line a crash cut short (or a power cut zero-filled) is skipped."""
    rows = []
    for number, line in enumerate(path.read_bytes().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:  # JSONDecodeError and UnicodeDecodeError
            row = None
        if isinstance(row, dict):
            rows.append(row)
        else:
            log.warning("%s line %d is not a record (a write cut short?); skipped", path, number)
    return rows


def append_line(path: Path, record: dict) -> None:
    with open(path, "a+b") as fh:  # writes append; the read looks at the last byte
        line = (json.dumps(record) + "\n").encode()
        if fh.seek(0, os.SEEK_END):
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":  # a line cut short: start a new one rather than glue this record to it
                line = b"\n" + line
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())
