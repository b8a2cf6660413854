"""Per-option carries: the history, not the size curve, says which push delivers more."""

from __future__ import annotations

import pytest

from edge.scheduler.adaptive import AdaptivePolicy
from edge.scheduler.policy import SKIP, Budget, EndpointState, PushOption, RoundRecord
from edge.scheduler.response import ResponseParams, fit_response

SMALL = PushOption("full-small", 300_000, "full", "small")
BIG = PushOption("full-big", 900_000, "full", "big")  # bigger, yet (in this made-up history) adapts worse
OPTIONS = [SKIP, SMALL, BIG]
FRAME = 12_000


def _record(r: int, push: PushOption, after: float, candidate: float, x_before: int = 0) -> RoundRecord:
    upload = 150 * FRAME
    return RoundRecord(
        round=r, endpoint_id="cam-1", policy="test", budget_bytes=0, planned_upload_bytes=upload,
        spent_upload_bytes=upload, planned_push_bytes=push.bytes, spent_push_bytes=push.bytes, frames_uploaded=150,
        push=push.name, push_kind=push.kind, push_student=push.student, uploaded_bytes_before=x_before,
        map_base=0.05, anchor_uploaded_bytes=0, anchor_map=0.05, map_before=0.05, map_after=after,
        candidate_map=candidate, candidate_bytes=push.bytes if push.kind == "full" else SMALL.bytes)


def _history() -> list[RoundRecord]:
    # the big student reaches 0.08, the small one 0.14 (also seen as the edge's candidate)
    return [_record(0, BIG, 0.080, 0.081), _record(1, SMALL, 0.140, 0.141), _record(2, BIG, 0.079, 0.080),
            _record(3, SKIP, 0.05, 0.139)]


def test_fit_learns_each_options_carry():
    prior = ResponseParams(gain=0.25, data_scale_bytes=100 * FRAME, full_scale_bytes=450_000)
    fit = fit_response(_history(), prior, options=OPTIONS)
    assert fit.counts["full:big"] == 4 and fit.counts["full:small"] == 3  # pushes and candidates; a skip's by size
    delivered = {o.name: fit.params.gain * fit.option_carry(o) for o in (SMALL, BIG)}
    # measured gains 0.09 and 0.03 over base: the small student delivers about three times the big one's
    assert delivered["full-small"] / delivered["full-big"] == pytest.approx(3.0, rel=0.25)
    # the size curve alone cannot say it: one scale makes the bigger push carry more
    curve = fit_response(_history(), prior, options=OPTIONS, per_option=False)
    assert curve.carry == {}


@pytest.mark.parametrize("per_option, expected", [(True, "full-small"), (False, "full-big")])
def test_adaptive_pushes_what_delivered_not_what_is_bigger(per_option, expected):
    state = EndpointState("cam-1", map_deployed=0.05, map_base=0.05, uploaded_bytes=300 * FRAME,
                          deployed_student="small", deployed_model_bytes=SMALL.bytes, bytes_per_frame=FRAME,
                          frames_per_round=10)
    policy = AdaptivePolicy(per_option=per_option)
    plan = policy.plan(Budget(2_000_000), [state], _history(), OPTIONS).endpoints[0]
    assert plan.push.name == expected


def test_an_untried_option_is_judged_optimistically():
    fit = fit_response(_history()[1:2], ResponseParams(), options=OPTIONS)
    assert fit.counts["full:big"] == 0
    assert fit.option_carry(BIG, optimism=1.0) > fit.option_carry(BIG)  # untried: the benefit of the doubt
    assert fit.option_carry(SMALL, optimism=1.0) == fit.option_carry(SMALL)  # tried: its record


def test_offset_spread_shrinks_an_option_with_few_observations():
    import numpy as np

    from edge.scheduler.response_fit import _offset_spread

    keys = np.array([0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1], dtype=float)
    spread = _offset_spread(keys, 3, 10.0)
    assert spread[0] < spread[1] < 1.0  # one observation is credited less than ten
    assert spread[1] == np.sqrt(10 / 20)
    assert spread[2] == 1.0  # never observed: the prior's full spread (its optimism stays)
    assert np.all(_offset_spread(keys, 3, 0.0) == 1.0)
