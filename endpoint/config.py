"""The endpoint's configuration, read once from a YAML file at the entry point (``load_config``)."""

from __future__ import annotations

from pydantic import Field, field_validator

from endpoint.wire.broker_config import BrokerConfig
from endpoint.wire.config_base import StrictConfig
from endpoint.wire.protocol import ENDPOINT_ID_PATTERN
from endpoint.sources.streams import SourceConfig


class SamplerConfig(StrictConfig):
    name: str = Field("uniform", description="strategy: uniform, low_confidence, every_nth")
    sample_rate: float = Field(0.2, ge=0, le=1, description="fraction of frames the strategy may take")
    round_budget_bytes: int | None = Field(None, description="cap on uploaded bytes per round (None: no cap)")
    seed: int = Field(0, description="seed of the random strategies")

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        from endpoint.uplink.sampler import STRATEGIES

        if name not in STRATEGIES:  # it failed on the first frame, a traceback, exit 1
            raise ValueError(f"unknown sampler {name!r}; choose from {', '.join(STRATEGIES)}")
        return name


class UplinkConfig(StrictConfig):
    rate_bytes_per_s: float = Field(250_000, gt=0, description="token-bucket rate of the uplink")
    burst_bytes: int = Field(262_144, gt=0, description="token-bucket capacity")
    window: int = Field(32, gt=0, description="frames sent but not yet acked by the edge")
    ack_timeout_s: float = Field(10.0, gt=0, description="re-send a frame not acked by then")
    spool_dir: str = Field("edgeloop-data/spool", description="on-disk spool of unacked frames")
    spool_max_frames: int = Field(100_000, gt=0, description="stop sampling when this many frames wait")
    jpeg_quality: int = Field(85, ge=10, le=100, description="JPEG quality of uploaded frames")


class ModelConfig(StrictConfig):
    path: str = Field("", description="the ONNX student to start with (empty: upload only, no detection)")
    version: str = Field("v0000", description="version of the starting model")
    conf_threshold: float = Field(0.25, description="detector confidence threshold")
    iou_threshold: float = Field(0.7, description="NMS IoU threshold")
    models_dir: str = Field("edgeloop-data/models", description="where pushed models are kept")
    public_key: str = Field("", description="Ed25519 public key that signs pushed models (empty: refuse pushes)")
    fleet: str = Field("default", pattern=ENDPOINT_ID_PATTERN,
                       description="fleet group this endpoint belongs to: it takes models signed for it or its id")


class EndpointConfig(StrictConfig):
    endpoint_id: str = Field("cam-1", pattern=ENDPOINT_ID_PATTERN, description="unique id, also the topic level")
    round: int = Field(0, ge=0, description="round to start in, until a plan says otherwise")
    broker: BrokerConfig = Field(default_factory=BrokerConfig, description="the edge's broker; the client id "
                                 "defaults to endpoint-<endpoint_id>")
    source: SourceConfig = Field(default_factory=SourceConfig, description="where frames come from")
    sampler: SamplerConfig = Field(default_factory=SamplerConfig, description="which frames are uploaded")
    uplink: UplinkConfig = Field(default_factory=UplinkConfig, description="how uploads are paced and spooled")
    model: ModelConfig = Field(default_factory=ModelConfig, description="the detector and the pushed models")
    telemetry_interval_s: float = Field(5.0, gt=0, description="how often telemetry is published")
    exit_when_drained: bool = Field(False, description="when the source ends, wait for every frame's ack, then exit")
    drain_timeout_s: float = Field(300.0, description="the longest to wait for the spool to drain at the end")
    summary_path: str = Field("", description="write a JSON summary of the run here at exit")
    metrics_port: int = Field(0, ge=0, le=65535, description="serve Prometheus metrics on this port (0: off)")
    detections_rate_hz: float = Field(2.0, ge=0, le=100, description="publish the detector's boxes on the "
                                      "`detections` topic at most this often (QoS 0, outside the upload budget; 0: off)")


__all__ = ["BrokerConfig", "EndpointConfig", "ModelConfig", "SamplerConfig", "UplinkConfig"]
