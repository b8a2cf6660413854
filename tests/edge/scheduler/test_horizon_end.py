"""The last rounds: a plan is judged only over the rounds that are left, so the last one never banks data."""

from __future__ import annotations

import numpy as np
import pytest

from edge.learner.round_settings import RoundSettings
from edge.scheduler.adaptive import DEFAULT_HORIZON
from edge.scheduler.lookahead import Situation
from edge.scheduler.planning import plan_allocation
from edge.scheduler.policy import SKIP, Budget, EndpointState, PushOption

MB = 1_000_000
PUSH = PushOption("full", 200_000, "full", "student")
STATE = EndpointState("cam-1", map_deployed=0.14, map_base=0.05, uploaded_bytes=MB, deployed_student="student",
                      deployed_model_bytes=600_000)


def _after(sit: Situation, upload, option: PushOption) -> np.ndarray:
    """Made up: a push now gains a little; one trained on 3.2 MB or more gains a lot (so banking data pays)."""
    x = sit.x_bytes + np.asarray(upload, dtype=np.float64)
    if option.kind == "skip":
        return np.broadcast_to(np.asarray(sit.map_deployed, dtype=np.float64), x.shape).copy()
    return 0.14 + 0.02 * (x - MB) / MB + 0.3 * (x >= 3.2 * MB)


def _plan(rounds_left: int | None):
    allocation = plan_allocation("test", Budget(1_250_000, rounds_left=rounds_left), [STATE], [[SKIP, PUSH]],
                                 [Situation.from_state(STATE)], [_after], horizon=DEFAULT_HORIZON)
    return allocation.endpoints[0]


@pytest.mark.parametrize("rounds_left, push", [(None, "skip"), (DEFAULT_HORIZON, "skip"), (2, "skip"), (1, "full")])
def test_the_last_round_pushes_what_a_later_round_would_have_pushed(rounds_left, push):
    plan = _plan(rounds_left)
    assert plan.push.name == push
    if push == "full":  # the rest of the link still carries frames for the student it pushes
        assert plan.upload_bytes == 1_250_000 - PUSH.bytes


def test_rounds_left_counts_this_round_and_stops_at_one():
    with pytest.raises(ValueError, match="rounds_left"):
        Budget(1_000, rounds_left=0)
    settings = RoundSettings(budget_bytes=1_000, last_round=3)
    assert [settings.rounds_left(r) for r in range(5)] == [4, 3, 2, 1, 1]
    assert RoundSettings(budget_bytes=1_000).rounds_left(7) is None


def _saturated(sit: Situation, upload, option: PushOption) -> np.ndarray:
    """Made up: the fit believes more data buys nothing, so a push is predicted to tie with the deployed model."""
    x = np.asarray(upload, dtype=np.float64)
    return np.broadcast_to(np.asarray(sit.map_deployed, dtype=np.float64), x.shape).copy()


@pytest.mark.parametrize("rounds_left, push", [(None, "skip"), (2, "skip"), (1, "full")])
def test_a_tie_in_the_last_round_goes_to_the_push(rounds_left, push):
    # data banked now could only pay through a later push; in the last round there is none, so the push wins
    states = [STATE, EndpointState("cam-2", 0.2, 0.05, MB, "student", 600_000)]
    allocation = plan_allocation("test", Budget(1_250_000, rounds_left=rounds_left), states, [[SKIP, PUSH]] * 2,
                                 [Situation.from_state(s) for s in states], [_saturated] * 2, horizon=DEFAULT_HORIZON)
    assert [plan.push.name for plan in allocation.endpoints] == [push, push]
    if push == "full":  # and the rest of the link still carries frames for it
        assert [plan.upload_bytes for plan in allocation.endpoints] == [1_250_000 - PUSH.bytes] * 2
