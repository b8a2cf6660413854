"""Configuration of ``edgeloop round``: the broker, the store, the endpoints and how the edge learns."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from edge.learning_config import LearningConfig
from edge.store.config import StoreConfig


class RoundEndpoint(BaseModel):
    """An endpoint the edge plans for, pushes to and scores on its held-out labelled frames."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="the endpoint's endpoint_id")
    val: Path = Field(description="YOLO data set folder whose images/val + labels/val score this endpoint")


class RoundConfig(BaseModel):
    """Everything one learning round against running endpoints needs; state persists in ``state_dir``."""

    model_config = ConfigDict(extra="forbid")
    broker_host: str = Field("127.0.0.1", description="MQTT broker host")
    broker_port: int = Field(1883, ge=1, le=65535, description="MQTT broker port")
    username: str | None = Field(None, description="MQTT user name, if the broker wants one")
    password: str | None = Field(None, description="MQTT password")
    store: StoreConfig = Field(default_factory=StoreConfig, description="the store ingest writes frames to")
    state_dir: Path = Field(Path("edgeloop-data/edge-state"),
                            description="models, replay, history and signing key between rounds")
    bootstrap_data: Path | None = Field(
        None, description="YOLO data set folder (images/{train,val}, labels/…, data.yaml) of the first domain; "
                          "the first teacher and student train on it unless learning gives .pt weights")
    endpoints: list[RoundEndpoint] = Field(min_length=1, description="endpoints taking part")
    domain: str = Field("live", description="name of the current domain (a label in results and plans)")
    policy: str = Field("adaptive", description="bandwidth scheduler policy")
    budget_kbps: float = Field(1000.0, gt=0, description="link budget per endpoint, kilobits/s")
    round_s: float = Field(60.0, gt=0, description="link seconds of a round (budget = kbps x round_s)")
    frames: int = Field(0, ge=0, description="frames a scenario or folder source streams per round; "
                                             "0 for cameras (the round then lasts round_s)")
    labels: list[str] = Field(default_factory=lambda: ["oracle", "import", "teacher"],
                              description="label sources in order of preference")
    learning: LearningConfig = Field(default_factory=LearningConfig, description="models, epochs, replay")


def load_round_config(path: str | Path) -> RoundConfig:
    raw = yaml.safe_load(Path(path).read_text()) or {}
    return RoundConfig.model_validate(raw)
