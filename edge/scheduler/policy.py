"""The scheduler's vocabulary: a round's budget, push options, endpoint state, round records, plans, and ``Policy``.

Per round and endpoint a policy decides how many link bytes carry sampled frames up
(data) and which model push comes back down (skip, a delta, or a full INT8 student).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal, Mapping, Protocol, Sequence, Union, runtime_checkable

PushKind = Literal["skip", "delta", "full"]


@dataclass(frozen=True)
class PushOption:
    """One way to update an endpoint's model this round, with its size on the link."""

    name: str
    bytes: int
    kind: PushKind
    student: str = ""  # the student the push deploys ("" for skip)
    carry: float | None = None  # measured share of the edge's improvement it delivers; None: from the fitted curve

    def __post_init__(self) -> None:
        if self.kind not in ("skip", "delta", "full"):
            raise ValueError(f"push kind {self.kind!r} is not skip, delta or full")
        if self.bytes < 0 or (self.kind == "skip") != (self.bytes == 0):
            raise ValueError(f"push option {self.name!r}: a skip has 0 bytes and every other push more")


SKIP = PushOption("skip", 0, "skip")


@dataclass(frozen=True)
class Budget:
    """Link bytes of one round: ``bytes`` for each endpoint, or one edge link of ``bytes`` shared by all."""

    bytes: int
    shared: bool = False
    # rounds a choice can still pay off in, this one included (1: the last round); None: no end in sight
    rounds_left: int | None = None

    def __post_init__(self) -> None:
        if self.bytes < 0:
            raise ValueError("a budget cannot be negative")
        if self.rounds_left is not None and self.rounds_left < 1:
            raise ValueError(f"rounds_left must be at least 1 (this round), not {self.rounds_left}")


@dataclass(frozen=True)
class EndpointState:
    """What the edge knows of one endpoint when it plans a round."""

    endpoint_id: str
    map_deployed: float  # measured mAP50-95 of the running student on the current domain
    map_base: float  # mAP50-95 when the current domain began: the anchor of the response curves
    uploaded_bytes: int = 0  # bytes of the current domain uploaded so far (what the edge trains on)
    deployed_student: str = ""
    deployed_model_bytes: int = 0  # full INT8 size of the deployed student
    # The last full push of this domain (or the domain's start): a delta only retunes part of that model.
    anchor_uploaded_bytes: int = 0
    anchor_map: float | None = None  # None: map_base
    bytes_per_frame: float = 12_000.0  # mean uploaded bytes of one sampled frame
    frames_per_round: int | None = None  # frames the endpoint sees in a round; None: unknown (no upload cap)

    @property
    def max_upload_bytes(self) -> float:
        """The most the endpoint can upload this round: every frame it sees."""
        if self.frames_per_round is None:
            return float("inf")
        return self.frames_per_round * self.bytes_per_frame


@dataclass(frozen=True)
class RoundRecord:
    """What one round did for one endpoint: planned and spent bytes, the push, and mAP around it."""

    round: int
    endpoint_id: str
    policy: str
    budget_bytes: int  # the endpoint's share of the link this round
    planned_upload_bytes: int
    spent_upload_bytes: int  # measured: frame bytes that reached the store
    planned_push_bytes: int
    spent_push_bytes: int  # measured: bytes the publisher sent
    frames_uploaded: int
    push: str  # push option name
    push_kind: PushKind
    push_student: str
    uploaded_bytes_before: int  # the state's uploaded_bytes when the round began
    map_base: float
    anchor_uploaded_bytes: int  # the state's anchor when the round began
    anchor_map: float
    map_before: float  # deployed mAP50-95 when the round began
    map_after: float  # deployed mAP50-95 after the push
    candidate_map: float | None = None  # the edge's freshly trained full student, evaluated before the push
    candidate_bytes: int | None = None  # that student's full INT8 size
    # every full push the edge could have made this round, evaluated on its held-out frames (no link bytes):
    # student -> (mAP50-95, full INT8 bytes); empty when only ``candidate_map`` was measured
    candidates: Mapping[str, tuple[float, int]] = field(default_factory=dict)
    # every delta the edge could have pushed this round, applied to the model deployed when the round began and
    # evaluated on its held-out frames (no link bytes): delta option name -> (mAP50-95, push bytes); empty when
    # none was evaluated
    delta_candidates: Mapping[str, tuple[float, int]] = field(default_factory=dict)
    domain: str = ""  # the round's domain label ("" in records written before the field existed)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping) -> "RoundRecord":
        raw = dict(raw)
        for name in ("candidates", "delta_candidates"):  # absent from records written before the field existed
            raw[name] = {k: (float(m), int(b)) for k, (m, b) in (raw.get(name) or {}).items()}
        return cls(**raw)


@dataclass(frozen=True)
class EndpointPlan:
    """One endpoint's share of a round: upload bytes and sampling, and which push follows."""

    endpoint_id: str
    upload_bytes: int
    push: PushOption = SKIP
    sampler: str = "uniform"
    sample_rate: float = 1.0
    expected_map: float | None = None  # the policy's prediction of deployed mAP after the round, if it has one

    @property
    def push_bytes(self) -> int:
        return self.push.bytes

    @property
    def total_bytes(self) -> int:
        return self.upload_bytes + self.push.bytes


@dataclass(frozen=True)
class Allocation:
    """A policy's plan for one round: one ``EndpointPlan`` per endpoint, in the order of the states."""

    policy: str
    budget: Budget
    endpoints: tuple[EndpointPlan, ...] = field(default_factory=tuple)

    def for_endpoint(self, endpoint_id: str) -> EndpointPlan:
        for plan in self.endpoints:
            if plan.endpoint_id == endpoint_id:
                return plan
        raise KeyError(f"no plan for endpoint {endpoint_id!r}")

    @property
    def upload_bytes(self) -> int:
        return sum(p.upload_bytes for p in self.endpoints)

    @property
    def push_bytes(self) -> int:
        return sum(p.push_bytes for p in self.endpoints)

    @property
    def data_share(self) -> float:
        """Planned data bytes over all planned bytes; 1.0 when nothing is planned."""
        total = self.upload_bytes + self.push_bytes
        return self.upload_bytes / total if total else 1.0


PushOptions = Union[Sequence[PushOption], Mapping[str, Sequence[PushOption]]]


@runtime_checkable
class Policy(Protocol):
    """Decides a round's split of the link between data upload and model push."""

    name: str

    def plan(self, budget: Budget, endpoints: Sequence[EndpointState], history: Sequence[RoundRecord],
             push_options: PushOptions) -> Allocation: ...


def options_for(push_options: PushOptions, endpoint_id: str) -> list[PushOption]:
    """An endpoint's push options (a plain sequence applies to all), always with ``skip`` first."""
    options = push_options.get(endpoint_id, ()) if isinstance(push_options, Mapping) else push_options
    rest = [o for o in options if o.kind != "skip"]
    return [SKIP, *sorted(rest, key=lambda o: (o.bytes, o.name))]


def endpoint_budgets(budget: Budget, count: int) -> list[int]:
    """Each endpoint's bytes: the whole budget each, or an equal share of a shared link."""
    if not budget.shared:
        return [budget.bytes] * count
    return [budget.bytes // max(1, count)] * count


def make_plan(state: EndpointState, upload_bytes: float, push: PushOption, sampler: str = "uniform",
              expected_map: float | None = None) -> EndpointPlan:
    """An ``EndpointPlan`` whose sample rate offers the sampler enough frames to fill ``upload_bytes``."""
    upload = max(0, int(upload_bytes))
    if state.frames_per_round:
        rate = min(1.0, upload / state.bytes_per_frame / state.frames_per_round)
    else:
        rate = 1.0 if upload > 0 else 0.0
    return EndpointPlan(state.endpoint_id, upload, push, sampler, rate, expected_map)


__all__ = ["Allocation", "Budget", "EndpointPlan", "EndpointState", "Policy", "PushKind", "PushOption",
           "PushOptions", "RoundRecord", "SKIP", "endpoint_budgets", "make_plan", "options_for"]
