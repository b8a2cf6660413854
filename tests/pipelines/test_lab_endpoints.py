"""The lab hands each endpoint a typed EndpointConfig: a wrong field fails in the lab, not in a child's log."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from endpoint.wire.broker_config import BrokerConfig
from endpoint.config import EndpointConfig, SamplerConfig
from endpoint.wire.config_base import load_config
from pipelines.lab_endpoints import LabEndpoints


def test_the_config_the_lab_writes_is_the_one_the_endpoint_reads(tmp_path):
    config = EndpointConfig(endpoint_id="cam-3", broker=BrokerConfig(port=18830),
                            sampler=SamplerConfig(name="uniform", sample_rate=1.0, seed=3), telemetry_interval_s=1.0)
    endpoint = LabEndpoints(tmp_path).add(config)
    assert endpoint.endpoint_id == "cam-3" and endpoint.config_path.parent == tmp_path / "cam-3"
    assert load_config(EndpointConfig, endpoint.config_path) == config


def test_a_misspelt_field_fails_where_the_lab_builds_the_config():
    with pytest.raises(ValidationError, match="sample_rat"):
        SamplerConfig(name="uniform", sample_rat=1.0)
