"""The learner's typed state, persisted after every stage so a restart resumes where the last one stopped."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from edge.scheduler.policy import EndpointPlan, PushOption

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
    domain: str = ""
    map_base: float = 0.0
    uploaded_bytes_domain: int = 0
    anchor_uploaded_bytes: int = 0
    anchor_map: float | None = None
    bytes_per_frame: float = 12_000.0


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
    kind: str
    bytes: int
    version: str


class RoundProgress(_Strict):
    """The round in flight: which stage it reached and what each finished stage produced."""

    round: int
    domain: str
    stage: Stage
    started_time: float
    plans: list[PlannedEndpoint]
    versions_before: dict[str, str] = Field(default_factory=dict, description="what each endpoint ran at the plan")
    spent_upload_bytes: dict[str, int] = Field(default_factory=dict)
    labelled_frames: int = Field(0, description="frames of this round that got labels")
    candidate_version: str = Field("", description="the student registered this round ('' if none)")
    pushes: dict[str, PushDone] = Field(default_factory=dict, description="endpoint -> push sent this round")
    stage_seconds: dict[str, float] = Field(default_factory=dict)


class LearnerState(_Strict):
    """Everything the learner needs to carry on after a restart; replay and history live beside it."""

    v: Literal[1] = 1
    next_round: int = 0
    class_names: list[str]
    first_domain: str
    teacher_pt: Path
    student_pt: Path
    static_onnx: Path = Field(description="the first student, never updated: the baseline")
    tracks: dict[str, TrackState] = Field(default_factory=dict)
    progress: RoundProgress | None = None
    last_round_end_time: float = 0.0
    last_agreement: dict[str, float] = Field(default_factory=dict)

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
    write_durably(Path(state_dir) / STATE_FILE, state.model_dump_json(indent=1).encode())


def write_durably(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def append_line(path: Path, record: dict) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(record) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
