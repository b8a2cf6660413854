"""Baselines without a response model: fixed data/model ratios, data-first and model-first.

None of them predicts mAP. Like the paper's baselines they push what the edge recommends: the
freshly distilled student of the endpoint's own model family, as the largest of its pushes (sparse
fraction, delta or full) that fits their model share; never another, bigger model because it fits.
A shared link is split equally between endpoints.
"""

from __future__ import annotations

import math
from typing import Sequence

from edge.scheduler.policy import (SKIP, Allocation, Budget, EndpointState, PushOption, PushOptions, RoundRecord,
                                   endpoint_budgets, make_plan, options_for)


def recommended_student(state: EndpointState, options: Sequence[PushOption]) -> str:
    """The student the edge distills for this endpoint: the one it runs; unknown, the one its deltas apply to,
    else the smallest full push (the endpoint-sized model)."""
    if state.deployed_student:
        return state.deployed_student
    deltas = [o for o in options if o.kind == "delta"]
    if deltas:
        return deltas[0].student
    fulls = [o for o in options if o.kind == "full"]
    return min(fulls, key=lambda o: (o.bytes, o.name)).student if fulls else ""


def largest_fitting(options: Sequence[PushOption], room_bytes: float, student: str | None = None) -> PushOption:
    """The push with the most bytes that fits ``room_bytes`` (of ``student`` only, when given); skip when none does."""
    fitting = [o for o in options if o.kind != "skip" and o.bytes <= room_bytes
               and (student is None or o.student == student)]
    return max(fitting, key=lambda o: (o.bytes, o.kind == "full", o.name)) if fitting else SKIP


def recommended_fitting(state: EndpointState, options: Sequence[PushOption], room_bytes: float) -> PushOption:
    """The largest push of the recommended student that fits ``room_bytes``; skip when none does."""
    return largest_fitting(options, room_bytes, recommended_student(state, options))


class _PerEndpointPolicy:
    """A rule applied to each endpoint's share of the budget on its own."""

    name = "base"
    sampler = "uniform"

    def split(self, budget_bytes: int, state: EndpointState, options: Sequence[PushOption]) -> tuple[float,
                                                                                                      PushOption]:
        raise NotImplementedError

    def plan(self, budget: Budget, endpoints: Sequence[EndpointState], history: Sequence[RoundRecord],
             push_options: PushOptions) -> Allocation:
        plans = []
        for state, share in zip(endpoints, endpoint_budgets(budget, len(endpoints))):
            upload, push = self.split(share, state, options_for(push_options, state.endpoint_id))
            plans.append(make_plan(state, upload, push, self.sampler))
        return Allocation(self.name, budget, tuple(plans))


class FixedRatioPolicy(_PerEndpointPolicy):
    """``data_percent`` of the bytes carry data, the rest is the model's share (unused if no push fits it)."""

    def __init__(self, data_percent: int):
        if not 0 <= data_percent <= 100:
            raise ValueError("data_percent must be within 0..100")
        self.data_percent = data_percent
        self.name = f"fixed-{data_percent}-{100 - data_percent}"

    def split(self, budget_bytes, state, options):
        upload = math.floor(budget_bytes * self.data_percent / 100)
        return upload, recommended_fitting(state, options, budget_bytes - upload)


class DataFirstPolicy(_PerEndpointPolicy):
    """All the data the endpoint can offer first; the largest recommended push that fits the rest."""

    name = "data-first"

    def split(self, budget_bytes, state, options):
        upload = min(budget_bytes, state.max_upload_bytes)
        return upload, recommended_fitting(state, options, budget_bytes - upload)


class ModelFirstPolicy(_PerEndpointPolicy):
    """The largest recommended push that fits first; data takes the rest."""

    name = "model-first"

    def split(self, budget_bytes, state, options):
        push = recommended_fitting(state, options, budget_bytes)
        return min(budget_bytes - push.bytes, state.max_upload_bytes), push


__all__ = ["DataFirstPolicy", "FixedRatioPolicy", "ModelFirstPolicy", "largest_fitting", "recommended_fitting",
           "recommended_student"]
