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
    keepalive_s: int = Field(30, ge=5, description="MQTT keepalive")
    shared_group: str = Field("ingest", pattern=r"^[A-Za-z0-9_.-]*$",
                              description="MQTT shared subscription group so workers split the load; empty subscribes plainly")
    store: StoreConfig = Field(default_factory=StoreConfig, description="object store the frames are written to")
    ack_batch_max_ids: int = Field(32, ge=1, description="flush a frame ack once it carries this many ids")
    ack_flush_interval_s: float = Field(0.05, gt=0, description="flush pending frame acks at least this often")
    queue_max_messages: int = Field(256, ge=1, description="frames (up to 4 MiB each) waiting for the store; "
                                    "past this they are dropped unacked and the endpoint re-sends them")
    store_retry_initial_s: float = Field(0.1, gt=0, description="first wait before retrying a failed store write")
    store_retry_max_s: float = Field(5.0, gt=0, description="longest wait between store write retries")
    metrics_port: int = Field(0, ge=0, le=65535, description="serve Prometheus metrics on this port; 0 = off")
    stats_log_interval_s: float = Field(60.0, gt=0, description="how often run_ingest logs its counters")


def load_ingest_config(path: str | Path) -> IngestConfig:
    """Read an IngestConfig from a YAML file (an ``ingest:`` section or the bare fields)."""
    raw = yaml.safe_load(Path(path).read_text()) or {}
    if isinstance(raw, dict) and isinstance(raw.get("ingest"), dict) and len(raw) == 1:
        raw = raw["ingest"]
    return IngestConfig.model_validate(raw)
