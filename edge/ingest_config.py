"""Configuration of the edge ingest service, read once by the entry point."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from edge.store.config import StoreConfig


class IngestConfig(BaseModel):
    """Where frames come from (MQTT), where they go (object store), and how acks are batched."""

    model_config = ConfigDict(extra="forbid")
    broker_host: str = Field("127.0.0.1", description="MQTT broker host")
    broker_port: int = Field(1883, ge=1, le=65535, description="MQTT broker port")
    client_id: str = Field("", description="MQTT client id; empty picks a unique one (each worker needs its own)")
    username: str | None = Field(None, description="MQTT user name, if the broker wants one")
    password: str | None = Field(None, description="MQTT password")
    password_file: str = Field("", description="read the MQTT password from this file instead (a Docker secret, "
                               "made by deploy/make-secrets.sh)")
    tls_ca_file: str = Field("", description="CA certificate of the broker: set, connect with TLS (port 8883)")
    tls_cert_file: str = Field("", description="client certificate, only if the broker asks for one")
    tls_key_file: str = Field("", description="key of tls_cert_file")
    keepalive_s: int = Field(30, ge=5, description="MQTT keepalive")
    shared_group: str | None = Field(
        "ingest", pattern=r"^[A-Za-z0-9_.-]*$",
        description="MQTT shared subscription group ($share/<group>/...) so ingest instances split the load; "
                    "None or '' subscribes plainly to edgeloop/v1/+/frame, for brokers without shared "
                    "subscriptions (amqtt); every plain instance then gets every frame (stored once, "
                    "but handled by each)")
    store: StoreConfig = Field(default_factory=StoreConfig, description="object store the frames are written to")
    ack_batch_max_ids: int = Field(32, ge=1, description="flush a frame ack once it carries this many ids")
    ack_flush_interval_s: float = Field(0.05, gt=0, description="flush pending frame acks at least this often")
    store_concurrency: int = Field(16, ge=1, le=256, description="frames checked and written to the store at "
                                   "once by this instance (worker threads); a remote store needs more")
    queue_max_messages: int = Field(256, ge=1, description="frames waiting for a store worker; when full, "
                                    "the MQTT thread waits (the broker holds further messages)")
    queue_max_bytes: int = Field(64 * 1024 * 1024, ge=1, description="payload bytes waiting for a store worker; "
                                 "bounds memory like queue_max_messages (one frame is always let in)")
    queue_wait_s: float = Field(1.0, gt=0, description="how long the MQTT thread waits for room before dropping "
                                "a frame unacked (the endpoint re-sends it); kept well under keepalive_s")
    store_retry_initial_s: float = Field(0.1, gt=0, description="first wait before retrying a failed store write")
    store_retry_max_s: float = Field(5.0, gt=0, description="longest wait between store write retries")
    metrics_port: int = Field(0, ge=0, le=65535, description="serve Prometheus metrics on this port; 0 = off")
    stats_log_interval_s: float = Field(60.0, gt=0, description="how often run_ingest logs its counters")

    def mqtt_password(self) -> str | None:
        """The password: ``password_file``'s content when set, else ``password`` (read at connect time)."""
        return Path(self.password_file).read_text().strip() if self.password_file else self.password


def load_ingest_config(path: str | Path) -> IngestConfig:
    """Read an IngestConfig from a YAML file (an ``ingest:`` section or the bare fields)."""
    raw = yaml.safe_load(Path(path).read_text()) or {}
    if isinstance(raw, dict) and isinstance(raw.get("ingest"), dict) and len(raw) == 1:
        raw = raw["ingest"]
    return IngestConfig.model_validate(raw)
