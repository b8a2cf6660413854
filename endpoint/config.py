"""The endpoint's configuration, read once from a YAML file at the entry point."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from endpoint.sources.streams import SourceConfig
from endpoint.wire.protocol import ENDPOINT_ID_PATTERN


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BrokerConfig(_Strict):
    host: str = Field("127.0.0.1", description="MQTT broker host")
    port: int = Field(1883, description="MQTT broker port")
    username: str = Field("", description="MQTT user (the endpoint id under the compose ACL)")
    password: str = Field("", description="MQTT password")
    password_file: str = Field("", description="read the MQTT password from this file instead (a Docker secret, "
                               "made by deploy/make-secrets.sh), so no password sits in the config")
    keepalive_s: int = Field(15, description="MQTT keepalive")
    tls_ca_file: str = Field("", description="CA certificate that signed the broker's: set, the link uses TLS "
                             "(port 8883) and checks the broker's name against it; empty: plain MQTT")
    tls_cert_file: str = Field("", description="client certificate, only if the broker asks for one")
    tls_key_file: str = Field("", description="key of tls_cert_file")

    def mqtt_password(self) -> str:
        """The password: ``password_file``'s content when set, else ``password`` (read at connect time)."""
        return Path(self.password_file).read_text().strip() if self.password_file else self.password


class SamplerConfig(_Strict):
    name: str = Field("uniform", description="strategy: uniform, low_confidence, every_nth")
    sample_rate: float = Field(0.2, ge=0, le=1, description="fraction of frames the strategy may take")
    round_budget_bytes: int | None = Field(None, description="cap on uploaded bytes per round (None: no cap)")
    seed: int = Field(0, description="seed of the random strategies")


class UplinkConfig(_Strict):
    rate_bytes_per_s: float = Field(250_000, gt=0, description="token-bucket rate of the uplink")
    burst_bytes: int = Field(262_144, gt=0, description="token-bucket capacity")
    window: int = Field(32, gt=0, description="frames sent but not yet acked by the edge")
    ack_timeout_s: float = Field(10.0, gt=0, description="re-send a frame not acked by then")
    spool_dir: str = Field("edgeloop-data/spool", description="on-disk spool of unacked frames")
    spool_max_frames: int = Field(100_000, gt=0, description="stop sampling when this many frames wait")
    jpeg_quality: int = Field(85, ge=10, le=100, description="JPEG quality of uploaded frames")


class ModelConfig(_Strict):
    path: str = Field("", description="the ONNX student to start with (empty: upload only, no detection)")
    version: str = Field("v0000", description="version of the starting model")
    conf_threshold: float = Field(0.25, description="detector confidence threshold")
    iou_threshold: float = Field(0.7, description="NMS IoU threshold")
    models_dir: str = Field("edgeloop-data/models", description="where pushed models are kept")
    public_key: str = Field("", description="Ed25519 public key that signs pushed models (empty: refuse pushes)")
    fleet: str = Field("default", pattern=ENDPOINT_ID_PATTERN,
                       description="fleet group this endpoint belongs to: it takes models signed for it or its id")


class EndpointConfig(_Strict):
    endpoint_id: str = Field("cam-1", pattern=ENDPOINT_ID_PATTERN, description="unique id, also the topic level")
    round: int = Field(0, ge=0, description="round to start in, until a plan says otherwise")
    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    source: SourceConfig = Field(default_factory=SourceConfig)
    sampler: SamplerConfig = Field(default_factory=SamplerConfig)
    uplink: UplinkConfig = Field(default_factory=UplinkConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    telemetry_interval_s: float = Field(5.0, gt=0, description="how often telemetry is published")
    exit_when_drained: bool = Field(False, description="when the source ends, wait for every frame's ack, then exit")
    drain_timeout_s: float = Field(300.0, description="the longest to wait for the spool to drain at the end")
    summary_path: str = Field("", description="write a JSON summary of the run here at exit")
    metrics_port: int = Field(0, description="serve Prometheus metrics on this port (0: off)")
    detections_rate_hz: float = Field(2.0, ge=0, le=100, description="publish the detector's boxes on the "
                                      "`detections` topic at most this often (QoS 0, outside the upload budget; 0: off)")


def load_endpoint_config(path: str | Path) -> EndpointConfig:
    """Read and validate a YAML config; a bad field raises with its name."""
    raw = yaml.safe_load(Path(path).read_text()) or {}
    return EndpointConfig.model_validate(raw)
