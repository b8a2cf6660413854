"""Configuration of ``edgeloop endpoint --mode split``, read once from the same kind of YAML file."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from endpoint.config import BrokerConfig
from endpoint.sources.streams import SourceConfig
from endpoint.wire.protocol import ENDPOINT_ID_PATTERN


class SplitModeConfig(BaseModel):
    """Which half of which split runs here, and how its features travel."""

    model_config = ConfigDict(extra="forbid")
    set_dir: str = Field(description="split set folder (python -m edge.split build): <key>.head.onnx and full.onnx")
    split_key: str = Field("after4", description="pair to start with (after4, after4-bn4), or 'device' / 'edge'")
    codec: str = Field("q8c-zlib", description="feature codec: fp32, fp16-zlib, q8c-zlib ... q2c-zlib")
    jpeg_quality: int = Field(85, ge=10, le=100, description="JPEG quality when the split key is 'edge'")
    timeout_s: float = Field(1.0, gt=0, description="a reply later than this is stale: dropped, the frame counts lost")
    follow_directives: bool = Field(True, description="switch split and codec when the edge's controller says so")
    threads: int = Field(1, ge=0, description="onnxruntime threads for the head (0: onnxruntime's default)")
    conf_threshold: float = Field(0.25, description="detector confidence threshold (device-only, and sent to no one)")


class SplitEndpointConfig(BaseModel):
    """An endpoint in split mode: a source, a broker and a split set; no sampling, spool or model push."""

    model_config = ConfigDict(extra="forbid")
    endpoint_id: str = Field("cam-1", pattern=ENDPOINT_ID_PATTERN, description="unique id, also the topic level")
    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    source: SourceConfig = Field(default_factory=SourceConfig)
    split: SplitModeConfig
    summary_path: str = Field("", description="write a JSON summary of the run here at exit")


def load_split_endpoint_config(path: str | Path) -> SplitEndpointConfig:
    """Read and validate a split-mode YAML config; a bad field raises with its name."""
    raw = yaml.safe_load(Path(path).read_text()) or {}
    return SplitEndpointConfig.model_validate(raw)


__all__ = ["SplitEndpointConfig", "SplitModeConfig", "load_split_endpoint_config"]
