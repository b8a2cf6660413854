"""One record per round and endpoint, appended to ``rounds.jsonl``."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from edge.learner.state import read_lines


class RoundResult(BaseModel):
    """What one round did for one endpoint, measured."""

    model_config = ConfigDict(extra="forbid")
    round: int
    endpoint: str
    domain: str
    policy: str
    budget_bytes: int = Field(description="link bytes this endpoint had this round")
    planned_upload_bytes: int
    upload_bytes: int = Field(description="frame bytes that really crossed the link (resends included)")
    planned_push_bytes: int
    push_bytes: int = Field(description="model bytes that really crossed the link")
    push_kind: str = Field(description="skip, delta or full; failed: sent but not acked; pending: the endpoint "
                                       "never reported, so it is pushed when it does")
    frames_uploaded: int
    model_version: str = Field(description="the student the endpoint runs at the end of the round")
    map50: float
    map50_95: float
    map50_95_before: float = Field(description="the student it ran at the start of the round, same val set")
    static_map50_95: float = Field(description="a student never updated, same val set")
    teacher_map50_95: float
    agreement_map50_95: float | None = Field(
        None, description="label-free: the deployed student scored against the teacher's pseudo-labels on the "
                          "frames this endpoint uploaded this round")
    teacher_map50_95_by_domain: dict[str, float] = Field(
        default_factory=dict, description="the teacher after this round on every domain's held-out frames "
                                          "(does it forget the old ones?)")
    map50_95_by_domain: dict[str, float] = Field(
        default_factory=dict, description="the deployed student on every domain seen so far that this endpoint "
                                          "has held-out frames of (what it forgets of the old ones)")
    push_fraction: float | None = Field(
        None, description="share of the student's coordinates trained for the model this round pushed (1.0: "
                          "dense); None when nothing was pushed")
    wall_s: float


def read_results(path: str | Path) -> list[RoundResult]:
    """Every record of a rounds file (written by ``state.append_line``); a line a crash cut short is skipped,
    a record of another shape raises with the file's name."""
    try:
        return [RoundResult.model_validate(row) for row in read_lines(Path(path))]
    except ValueError as exc:
        raise ValueError(f"{path}: not a round record: {exc}") from None
