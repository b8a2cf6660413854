"""One BrokerConfig: the password from exactly one of inline, a file, or an environment variable."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from endpoint.wire.broker_config import BrokerConfig


def test_the_password_comes_from_the_named_environment_variable_when_read(monkeypatch):
    broker = BrokerConfig(username="cam-1", password_env="EDGELOOP_MQTT_PASSWORD")
    monkeypatch.setenv("EDGELOOP_MQTT_PASSWORD", "from-env")  # set after the config: read at connect time
    assert broker.mqtt_password() == "from-env"


def test_an_unset_password_variable_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("EDGELOOP_TEST_UNSET", raising=False)
    with pytest.raises(ValueError, match="EDGELOOP_TEST_UNSET.*not set"):
        BrokerConfig(password_env="EDGELOOP_TEST_UNSET").mqtt_password()


def test_the_password_file_is_read_and_stripped(tmp_path):
    (tmp_path / "pw").write_text("s3cret\n")
    assert BrokerConfig(password_file=str(tmp_path / "pw")).mqtt_password() == "s3cret"
    assert BrokerConfig(password="inline").mqtt_password() == "inline"
    assert BrokerConfig().mqtt_password() == ""


def test_two_password_sources_are_refused():
    with pytest.raises(ValidationError, match="at most one of password, password_file and password_env"):
        BrokerConfig(password="a", password_env="B")
    with pytest.raises(ValidationError, match="password_env"):
        BrokerConfig(password_env="not a name")


def test_the_edge_connection_is_built_from_a_broker_config(monkeypatch):
    from edge.mqtt_connection import MqttConnection

    monkeypatch.setenv("EDGELOOP_MQTT_PASSWORD", "pw")
    broker = BrokerConfig(host="edge.lan", port=8883, username="edge", password_env="EDGELOOP_MQTT_PASSWORD",
                          keepalive_s=20)
    connection = MqttConnection.from_config(broker, default_client_id="edgeloop-learner")
    assert (connection.host, connection.port, connection.client_id, connection.keepalive_s) == \
        ("edge.lan", 8883, "edgeloop-learner", 20)
    assert connection.client._username == b"edge" and connection.client._password == b"pw"
    assert MqttConnection.from_config(broker.model_copy(update={"client_id": "mine"})).client_id == "mine"
