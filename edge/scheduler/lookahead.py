"""What a round's choice is worth over the next few rounds, for any model of deployed mAP.

Judging a round only by the mAP right after it undervalues data: frames uploaded now are
trained on again by every later push. So a choice is scored by the mean deployed mAP over a
short horizon in which the endpoint later skips for a while and then makes its best push.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np

from edge.scheduler.policy import EndpointState, PushOption


@dataclass(frozen=True)
class Situation:
    """An endpoint as the response curves see it; number fields may be arrays, one entry per candidate."""

    x_bytes: np.ndarray | float  # bytes of the current domain the edge has
    map_deployed: np.ndarray | float
    map_base: float
    anchor_x_bytes: np.ndarray | float  # data at the last full push (0 at the domain's start)
    anchor_map: np.ndarray | float  # deployed mAP right after it (map_base at the domain's start)
    student: str = ""
    student_bytes: float = 0.0  # full INT8 size of the deployed student

    @classmethod
    def from_state(cls, state: EndpointState) -> "Situation":
        anchor_map = state.map_base if state.anchor_map is None else state.anchor_map
        return cls(float(state.uploaded_bytes), state.map_deployed, state.map_base,
                   float(state.anchor_uploaded_bytes), anchor_map, state.deployed_student,
                   float(state.deployed_model_bytes))

    def after(self, upload_bytes, option: PushOption, map_after) -> "Situation":
        """The situation a round leaves: more data, and a new deployed model (and anchor) after a full push."""
        x = self.x_bytes + np.asarray(upload_bytes, dtype=np.float64)
        if option.kind == "full":
            return Situation(x, map_after, self.map_base, x, map_after, option.student, float(option.bytes))
        return replace(self, x_bytes=x, map_deployed=map_after)


AfterFn = Callable[[Situation, np.ndarray, PushOption], np.ndarray]  # deployed mAP after (upload, push)


def next_round_options(options: Sequence[PushOption], chosen: PushOption) -> list[PushOption]:
    """Pushes available next round: deltas only while the deployed student stays the same."""
    changed = chosen.kind == "full" and chosen.student != next((o.student for o in options if o.kind == "delta"),
                                                                chosen.student)
    return [o for o in options if o.kind != "skip" and not (changed and o.kind == "delta")]


def horizon_value(after: AfterFn, situation: Situation, upload_bytes: np.ndarray, option: PushOption,
                  options: Sequence[PushOption], next_budget_bytes: float, max_upload_bytes: float,
                  horizon: int, round_cap_bytes: float | None = None) -> np.ndarray:
    """Mean deployed mAP over ``horizon`` rounds: this choice, then skips, then the best single push.

    Later rounds get ``next_budget_bytes`` each on average; one round can give the endpoint at most
    ``round_cap_bytes`` (its own link: the same; a shared link: all of it).
    """
    upload = np.asarray(upload_bytes, dtype=np.float64)
    first = np.asarray(after(situation, upload, option), dtype=np.float64)
    if horizon <= 1:
        return first
    cap = next_budget_bytes if round_cap_bytes is None else round_cap_bytes
    then = situation.after(upload, option, first)
    future = (horizon - 1) * first  # skip to the end
    for push in next_round_options(options, option):
        for k in range(1, horizon):  # skip rounds 1..k-1, push in round k
            if push.bytes > min(cap, k * next_budget_bytes):
                continue
            banked = min(k * next_budget_bytes - push.bytes,
                         (k - 1) * max_upload_bytes + min(cap - push.bytes, max_upload_bytes))
            pushed = np.maximum(np.asarray(after(then, np.full_like(upload, banked), push)), first)
            future = np.maximum(future, (k - 1) * first + (horizon - k) * pushed)
    return (first + future) / horizon


__all__ = ["AfterFn", "Situation", "horizon_value", "next_round_options"]
