"""Policies are resolved by name; unknown names and a live oracle are refused."""

from __future__ import annotations

import pytest

from edge.scheduler.policies import POLICY_NAMES, live_policy_names, make_policy
from edge.scheduler.policy import Policy


def test_every_live_name_builds_a_policy_of_that_name():
    assert set(live_policy_names()) == {"adaptive", "fixed-20-80", "fixed-50-50", "fixed-80-20", "data-first",
                                        "model-first"}
    for name in live_policy_names():
        policy = make_policy(name)
        assert isinstance(policy, Policy)
        assert policy.name == name


def test_unknown_name_is_an_error_that_lists_the_choices():
    with pytest.raises(ValueError, match="unknown scheduler policy 'greedy'.*adaptive"):
        make_policy("greedy")


def test_oracle_needs_the_true_surface():
    assert "oracle" in POLICY_NAMES
    with pytest.raises(ValueError, match="only in simulation"):
        make_policy("oracle")
    assert make_policy("oracle", truth=lambda endpoint_id: None).name == "oracle"
