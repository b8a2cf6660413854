"""An allocation becomes one plan message per endpoint."""

from __future__ import annotations

import pytest

from edge.scheduler.plans import to_protocol_plans
from edge.scheduler.policy import Allocation, Budget, EndpointPlan
from endpoint.wire import protocol
from tests.edge.scheduler.fakes import NANO


def test_plans_carry_budget_rate_and_sampling():
    allocation = Allocation("adaptive", Budget(2_000_000, shared=True), (
        EndpointPlan("cam-1", 600_000, NANO, "low_confidence", 0.4),
        EndpointPlan("cam-2", 0),
    ))
    plans = to_protocol_plans(allocation, round=3, round_duration_s=60.0)
    assert [p.endpoint_id for p in plans] == ["cam-1", "cam-2"]
    assert plans[0].upload_budget_bytes == 600_000
    assert plans[0].upload_rate_bytes_per_s == pytest.approx(10_000.0)
    assert (plans[0].sampler, plans[0].sample_rate, plans[0].round) == ("low_confidence", 0.4, 3)
    assert plans[1].upload_budget_bytes == 0 and plans[1].upload_rate_bytes_per_s > 0
    assert protocol.decode(protocol.encode(plans[0])) == plans[0]
    with pytest.raises(ValueError):
        to_protocol_plans(allocation, round=3, round_duration_s=0)
