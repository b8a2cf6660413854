"""From a model of deployed mAP to an ``Allocation``: the search shared by ``adaptive`` and ``oracle``."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from edge.scheduler.lookahead import AfterFn, Situation, horizon_value
from edge.scheduler.optimizer import allocate_link, best_split
from edge.scheduler.policy import Allocation, Budget, EndpointState, PushOption, make_plan


def plan_allocation(name: str, budget: Budget, states: Sequence[EndpointState],
                    options: Sequence[Sequence[PushOption]], situations: Sequence[Situation],
                    afters: Sequence[AfterFn], horizon: int, quanta: int = 200, grid_points: int = 257,
                    sampler: str = "uniform") -> Allocation:
    """Each endpoint's best split of its budget, or the best division of a shared link (see ``optimizer``)."""
    if budget.rounds_left is not None:  # no round past the last can push banked data or enjoy a model
        horizon = min(horizon, budget.rounds_left)
    last = budget.rounds_left == 1  # a tie between a push and banking data goes to the push
    next_budget = budget.bytes / max(1, len(states)) if budget.shared else budget.bytes
    values = [_value_fn(after, sit, opts, next_budget, budget.bytes, state.max_upload_bytes, horizon)
              for after, sit, opts, state in zip(afters, situations, options, states)]
    if budget.shared:
        choices = allocate_link(values, options, [s.max_upload_bytes for s in states], budget.bytes, quanta,
                                ties_to_push=last)
    else:
        choices = [best_split(v, budget.bytes, o, s.max_upload_bytes, grid_points, ties_to_push=last)
                   for v, o, s in zip(values, options, states)]
    plans = []
    for state, sit, after, choice in zip(states, situations, afters, choices):
        # the plan reports the mAP expected right after the round, not the horizon mean it was chosen by
        expected = float(np.asarray(after(sit, np.array([choice.upload_bytes]), choice.option))[0])
        plans.append(make_plan(state, choice.upload_bytes, choice.option, sampler, expected))
    return Allocation(name, budget, tuple(plans))


def _value_fn(after: AfterFn, sit: Situation, options: Sequence[PushOption], next_budget: float,
              round_cap: float, max_upload: float, horizon: int):
    def value(upload_bytes: np.ndarray, option: PushOption) -> np.ndarray:
        return horizon_value(after, sit, upload_bytes, option, options, next_budget, max_upload, horizon, round_cap)

    return value


__all__ = ["plan_allocation"]
