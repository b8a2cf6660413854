"""``oracle`` (simulation only): every allocation on a fine grid, scored by the simulator's true surface."""

from __future__ import annotations

from typing import Callable, Sequence

from edge.scheduler.adaptive import DEFAULT_HORIZON
from edge.scheduler.lookahead import AfterFn, Situation
from edge.scheduler.planning import plan_allocation
from edge.scheduler.policy import Allocation, Budget, EndpointState, PushOptions, RoundRecord, options_for

TruthFn = Callable[[str], tuple[Situation, AfterFn]]  # endpoint id -> its true situation and the true response


class OraclePolicy:
    """Knows the true state and response of every endpoint; judged like ``adaptive``, so it bounds it."""

    name = "oracle"

    def __init__(self, truth: TruthFn, horizon: int = DEFAULT_HORIZON, grid_points: int = 2001, quanta: int = 400):
        self.truth = truth
        self.horizon = horizon
        self.grid_points = grid_points
        self.quanta = quanta

    def plan(self, budget: Budget, endpoints: Sequence[EndpointState], history: Sequence[RoundRecord],
             push_options: PushOptions) -> Allocation:
        options = [options_for(push_options, s.endpoint_id) for s in endpoints]
        truths = [self.truth(s.endpoint_id) for s in endpoints]
        return plan_allocation(self.name, budget, endpoints, options, [t[0] for t in truths], [t[1] for t in truths],
                               self.horizon, self.quanta, self.grid_points)


__all__ = ["OraclePolicy", "TruthFn"]
