"""``adaptive``: fit the response curves to the rounds seen so far, then maximize predicted deployed mAP."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Mapping, Sequence

from edge.scheduler.lookahead import Situation
from edge.scheduler.planning import plan_allocation
from edge.scheduler.policy import Allocation, Budget, EndpointState, PushOption, PushOptions, RoundRecord, options_for
from edge.scheduler.response import ResponseFit, ResponseParams, default_prior, fit_response, predict_map

log = logging.getLogger(__name__)

DEFAULT_HORIZON = 3  # rounds a choice is judged over; 1 judges only the mAP right after the round
DEFAULT_OPTIMISM = 1.0  # posterior sds of optimism about what a push delivers: a barely seen option gets tried


class AdaptivePolicy:
    """One fit shared by all endpoints (same detector, similar drift); each endpoint keeps its own state.

    Every option the history has seen is planned with its own fitted carry (``optimism`` posterior sds up);
    one never seen, by the size curve.
    """

    name = "adaptive"

    def __init__(self, prior: ResponseParams | None = None, obs_sigma: float = 0.01, history_window: int = 400,
                 horizon: int = DEFAULT_HORIZON, quanta: int = 200, sampler: str = "uniform",
                 optimism: float = DEFAULT_OPTIMISM, per_option: bool = True):
        self.prior = prior
        self.obs_sigma = obs_sigma
        self.history_window = history_window
        self.horizon = horizon
        self.quanta = quanta
        self.sampler = sampler
        self.optimism = optimism
        self.per_option = per_option  # False: the size curve alone (one carry scale per kind)
        self.last_fit: ResponseFit | None = None
        self._offered: dict[str, list[PushOption]] = {}  # each endpoint's options at the last plan

    def fit(self, endpoints: Sequence[EndpointState], history: Sequence[RoundRecord],
            options: Sequence[PushOption]) -> ResponseFit:
        """Refit on the recent history; the prior speaks where the history is silent."""
        prior = self.prior or default_prior(endpoints, options)
        self.last_fit = fit_response(history[-self.history_window:], prior, obs_sigma=self.obs_sigma,
                                     options=options, per_option=self.per_option)
        return self.last_fit

    def with_carries(self, fit: ResponseFit, options: Sequence[PushOption]) -> list[PushOption]:
        """The options, each seen one with its own (optimistic) fitted carry; an explicit carry stays."""
        out = []
        for o in options:
            carry = fit.option_carry(o, self.optimism) if o.kind != "skip" and o.carry is None else None
            out.append(o if carry is None else replace(o, carry=carry))
        return out

    def plan(self, budget: Budget, endpoints: Sequence[EndpointState], history: Sequence[RoundRecord],
             push_options: PushOptions) -> Allocation:
        options = [options_for(push_options, s.endpoint_id) for s in endpoints]
        fit = self.fit(endpoints, history, [o for opts in options for o in opts])
        params = fit.params
        options = [self.with_carries(fit, opts) for opts in options]
        student_carry = {o.student: o.carry for opts in options for o in opts
                         if o.kind == "full" and o.carry is not None}

        def after(sit, upload_bytes, option):
            return predict_map(params, sit, upload_bytes, option, student_carry)

        self._offered = {s.endpoint_id: opts for s, opts in zip(endpoints, options)}
        situations = [Situation.from_state(s) for s in endpoints]
        return plan_allocation(self.name, budget, endpoints, options, situations, [after] * len(endpoints),
                               self.horizon, self.quanta, sampler=self.sampler)

    def repick_push(self, state: EndpointState, planned: PushOption, candidates: Mapping[str, tuple[float, int]],
                    deltas: Mapping[str, tuple[float, int]] | None = None) -> PushOption:
        """After the edge trained this round's data and evaluated every student (``candidates``: student -> (mAP,
        bytes)) and every delta on the deployed model (``deltas``: name -> (mAP, bytes)) on its held-out frames: a
        planned push goes to the best evaluated option, full or delta, whose push fits the bytes reserved for it."""
        deltas = deltas or {}

        def evaluated(o: PushOption) -> float | None:
            value = candidates.get(o.student) if o.kind == "full" else deltas.get(o.name) if o.kind == "delta" else None
            return None if value is None else value[0]

        mine = evaluated(planned)
        if mine is None:
            return planned
        fits = [(o, evaluated(o)) for o in self._offered.get(state.endpoint_id, ()) if 0 < o.bytes <= planned.bytes]
        fits = [(o, v) for o, v in fits if v is not None]
        best, value = max(fits, key=lambda ov: (ov[1], ov[0] == planned), default=(planned, mine))
        return best if value > mine else planned


__all__ = ["AdaptivePolicy", "DEFAULT_HORIZON", "DEFAULT_OPTIMISM"]
