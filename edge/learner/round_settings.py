"""How a round runs (``RoundSettings``) and whom it serves (``EndpointSpec``): what the lab and the service set."""

from __future__ import annotations

from dataclasses import dataclass, field

from edge.yolo_dataset import LabelledImage


@dataclass(frozen=True)
class RoundSettings:
    """How a round runs: the link budget, when collection ends, the label sources, the timeouts."""

    budget_bytes: int  # per endpoint and round
    round_s: float = 10.0  # link time of one round: the uplink spreads its budget over it
    frames_per_round: int = 120  # frames a plan-following source streams per round (0: a camera, continuous)
    labels: tuple[str, ...] = ("import", "teacher")
    collect_s: float | None = None  # schedule: learn this long after the plans went out; None: when endpoints report done
    min_frames: int = 0  # learn as soon as this many frames of the round are stored (0: off)
    drift_agreement_drop: float = 0.0  # learn early when label-free agreement falls this far below last round's
    wait_for_frames: bool = False  # a service keeps collecting past the schedule until a frame arrives
    upload_timeout_s: float = 180.0  # the longest collection waits for endpoints' reports
    push_timeout_s: float = 60.0
    push_regressions: bool = False  # push a student that scores below the deployed one (edge.learner.push_gate)
    last_round: int | None = None  # the learner stops after this round, so plans need not pay off later; None: no end

    def rounds_left(self, round_index: int) -> int | None:
        """Rounds from ``round_index`` to the last one, both counted; None when rounds go on."""
        return None if self.last_round is None else max(1, self.last_round - round_index + 1)


@dataclass
class EndpointSpec:
    """An endpoint this learner serves, with its held-out labelled frames per domain."""

    endpoint_id: str
    val_sets: dict[str, list[LabelledImage]] = field(default_factory=dict)
