"""``edgeloop edge --config FILE``: which roles this process runs (ingest, learner or both) and their settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from edge.ingest_config import IngestConfig
from edge.learner.config import LearnerConfig
from endpoint.wire.config_base import StrictConfig

Role = Literal["ingest", "learner"]


class EdgeServiceConfig(StrictConfig):
    """Ingest scales out (many processes, one shared subscription); the learner runs once per fleet."""

    roles: list[Role] = Field(default_factory=lambda: ["ingest", "learner"], min_length=1,
                              description="roles this process runs")
    ingest: IngestConfig | None = Field(None, description="settings of the ingest role")
    learner: LearnerConfig | None = Field(None, description="settings of the learner role")

    @model_validator(mode="after")
    def _roles_have_settings(self) -> "EdgeServiceConfig":
        for role in self.roles:
            if getattr(self, role) is None:
                raise ValueError(f"role {role!r} is listed but the config has no '{role}:' section")
        return self
