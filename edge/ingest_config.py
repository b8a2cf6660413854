"""Configuration of the edge ingest service, read once by the entry point with ``endpoint.wire.config_base.load_config``."""

from __future__ import annotations

from pydantic import Field

from edge.store.config import StoreConfig
from endpoint.wire.broker_config import BrokerConfig
from endpoint.wire.config_base import StrictConfig


class IngestConfig(StrictConfig):
    """Where frames come from (MQTT), where they go (object store), and how acks are batched."""

    broker: BrokerConfig = Field(default_factory=BrokerConfig, description="the broker frames arrive on; an "
                                 "empty client_id picks a unique one (each worker needs its own)")
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
                                "a frame unacked (the endpoint re-sends it); kept well under broker.keepalive_s")
    store_retry_initial_s: float = Field(0.1, gt=0, description="first wait before retrying a failed store write")
    store_retry_max_s: float = Field(5.0, gt=0, description="longest wait between store write retries")
    metrics_port: int = Field(0, ge=0, le=65535, description="serve Prometheus metrics on this port; 0 = off")
    stats_log_interval_s: float = Field(60.0, gt=0, description="how often run_ingest logs its counters")
