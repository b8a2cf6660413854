"""Policies by name, as ``edgeloop lab --policy NAME`` and the bench ask for them."""

from __future__ import annotations

from typing import Callable

from edge.scheduler.adaptive import AdaptivePolicy
from edge.scheduler.baselines import DataFirstPolicy, FixedRatioPolicy, ModelFirstPolicy
from edge.scheduler.oracle import OraclePolicy, TruthFn
from edge.scheduler.policy import Policy

_FACTORIES: dict[str, Callable[[], Policy]] = {
    "adaptive": AdaptivePolicy,
    "fixed-20-80": lambda: FixedRatioPolicy(20),
    "fixed-50-50": lambda: FixedRatioPolicy(50),
    "fixed-80-20": lambda: FixedRatioPolicy(80),
    "data-first": DataFirstPolicy,
    "model-first": ModelFirstPolicy,
}
SIMULATION_ONLY = ("oracle",)
POLICY_NAMES: tuple[str, ...] = (*_FACTORIES, *SIMULATION_ONLY)


def make_policy(name: str, truth: TruthFn | None = None) -> Policy:
    """A fresh policy; ``oracle`` also needs ``truth``, the simulator's true surface."""
    if name == "oracle":
        if truth is None:
            raise ValueError("the 'oracle' policy needs the true response surface; it exists only in simulation "
                             "(edgeloop bench scheduler)")
        return OraclePolicy(truth)
    try:
        return _FACTORIES[name]()
    except KeyError:
        raise ValueError(f"unknown scheduler policy {name!r}; choose one of {', '.join(POLICY_NAMES)}") from None


def live_policy_names() -> list[str]:
    """Policies that can run in the real loop (not the oracle)."""
    return list(_FACTORIES)


__all__ = ["POLICY_NAMES", "SIMULATION_ONLY", "live_policy_names", "make_policy"]
