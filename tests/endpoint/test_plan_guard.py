"""A plan that is valid on the wire but cannot be applied (found by ``edgeloop bench fuzz``) is refused whole.

An unknown sampler name or an infinite upload rate raised out of ``_on_plan`` after the round had already
switched: the MQTT handler failed and the endpoint ran the new round with the old sampler and rate.
"""

import json

import pytest

from endpoint.config import EndpointConfig
from endpoint.runtime import EndpointRuntime
from endpoint.wire import protocol


@pytest.fixture
def runtime(tmp_path):
    config = EndpointConfig.model_validate({"endpoint_id": "cam-1", "uplink": {"spool_dir": str(tmp_path / "spool")},
                                            "model": {"path": ""}})
    return EndpointRuntime(config)


def _plan(**fields) -> bytes:
    plan = protocol.Plan(endpoint_id="cam-1", round=4, upload_budget_bytes=1000, upload_rate_bytes_per_s=500.0)
    return json.dumps({**plan.model_dump(mode="json"), **fields}).encode()  # json writes inf as Infinity


@pytest.mark.parametrize("fields", [{"sampler": "no-such-sampler"}, {"upload_rate_bytes_per_s": float("inf")}],
                         ids=["unknown sampler", "infinite rate"])
def test_a_plan_that_cannot_be_applied_changes_nothing(runtime, fields):
    runtime._on_plan(_plan(**fields))  # raised ValueError
    assert (runtime.round, runtime._last_plan, runtime.sampler.name) == (0, None, "uniform")
    assert runtime._plans.empty()
    runtime._on_plan(_plan(round=5))  # the next good plan still applies
    assert runtime.round == 5 and runtime.bucket._rate == 500.0
