"""How any part of edgeloop reaches the MQTT broker: one model for the endpoint, ingest, learner and split server."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, model_validator

from endpoint.wire.config_base import StrictConfig

ENV_NAME_PATTERN = r"^([A-Za-z_][A-Za-z0-9_]*)?$"
MAX_SECRET_BYTES = 4096


class BrokerConfig(StrictConfig):
    """Host, login, TLS and client settings; the password comes from one of password, password_file, password_env."""

    host: str = Field("127.0.0.1", description="MQTT broker host")
    port: int = Field(1883, ge=1, le=65535,
                      description="MQTT broker port (with tls_ca_file, set the TLS listener's, e.g. 8883)")
    username: str = Field("", description="MQTT user (empty: no login; the endpoint id under the compose ACL)")
    password: str = Field("", description="MQTT password inline (prefer password_file or password_env)")
    password_file: str = Field("", description="read the MQTT password from this file (a Docker secret, made by "
                               "deploy/make-secrets.sh), so no password sits in the config")
    password_env: str = Field("", pattern=ENV_NAME_PATTERN,
                              description="read the MQTT password from this environment variable, e.g. "
                                          "EDGELOOP_MQTT_PASSWORD (a systemd or Kubernetes secret)")
    client_id: str = Field("", description="MQTT client id; empty: the role's own ('endpoint-<id>', a unique "
                                           "id per ingest worker, 'edgeloop-learner', a unique id per split server)")
    keepalive_s: int = Field(15, ge=5, le=3600, description="MQTT keepalive")
    tls_ca_file: str = Field("", description="CA certificate that signed the broker's: set, the client uses TLS "
                             "(set port to its TLS listener, e.g. 8883) and checks the broker's name against it; "
                             "empty: plain MQTT")
    tls_cert_file: str = Field("", description="client certificate, only if the broker asks for one")
    tls_key_file: str = Field("", description="key of tls_cert_file")

    @model_validator(mode="after")
    def _one_password_source(self) -> "BrokerConfig":
        given = [name for name in ("password", "password_file", "password_env") if getattr(self, name)]
        if len(given) > 1:
            raise ValueError(f"set at most one of password, password_file and password_env (got {', '.join(given)})")
        return self

    def mqtt_password(self) -> str:
        """The password, read now (at connect time, never at import): from the file, the variable, or inline."""
        if self.password_file:
            path = Path(self.password_file)
            if path.stat().st_size > MAX_SECRET_BYTES:
                raise ValueError(f"password_file {path} is larger than {MAX_SECRET_BYTES} bytes")
            return path.read_text().strip()
        if self.password_env:
            value = os.environ.get(self.password_env)
            if value is None:
                raise ValueError(f"password_env names {self.password_env}, which is not set in the environment")
            return value
        return self.password


__all__ = ["BrokerConfig"]
