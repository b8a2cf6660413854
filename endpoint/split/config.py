"""Configuration of ``edgeloop endpoint --mode split``, read once from the same kind of YAML file."""

from __future__ import annotations

from pydantic import Field

from endpoint.wire.broker_config import BrokerConfig
from endpoint.wire.config_base import StrictConfig
from endpoint.wire.protocol import ENDPOINT_ID_PATTERN
from endpoint.sources.streams import SourceConfig


class SplitModeConfig(StrictConfig):
    """Which half of which split runs here, and how its features travel."""

    set_dir: str = Field(description="split set folder (python -m edge.split build): <key>.head.onnx and full.onnx")
    split_key: str = Field("after4", description="pair to start with (after4, after4-bn4), or 'device' / 'edge'")
    codec: str = Field("q8c-zlib", description="feature codec: fp32, fp16-zlib, q8c-zlib ... q2c-zlib")
    jpeg_quality: int = Field(85, ge=10, le=100, description="JPEG quality when the split key is 'edge'")
    timeout_s: float = Field(1.0, gt=0, le=3600,  # inf passed, and Event.wait(inf) raised on the first frame
                             description="a reply later than this is stale: dropped, the frame counts lost")
    follow_directives: bool = Field(True, description="switch split and codec when the edge's controller says so")
    threads: int = Field(1, ge=0, description="onnxruntime threads for the head (0: onnxruntime's default)")
    conf_threshold: float = Field(0.25, description="detector confidence threshold (device-only, and sent to no one)")


class SplitEndpointConfig(StrictConfig):
    """An endpoint in split mode: a source, a broker and a split set; no sampling, spool or model push."""

    endpoint_id: str = Field("cam-1", pattern=ENDPOINT_ID_PATTERN, description="unique id, also the topic level")
    broker: BrokerConfig = Field(default_factory=BrokerConfig, description="the broker the split server listens on")
    source: SourceConfig = Field(default_factory=SourceConfig, description="where frames come from")
    split: SplitModeConfig = Field(description="the split set, the pair to start with, and the codec")
    summary_path: str = Field("", description="write a JSON summary of the run here at exit")


__all__ = ["SplitEndpointConfig", "SplitModeConfig"]
