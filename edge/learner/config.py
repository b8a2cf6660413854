"""Configuration of the learner role: the fleet it serves, when rounds start, and how it learns."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from edge.learning_config import LearningConfig
from edge.store.config import StoreConfig
from edge.yolo_dataset import LabelledImage
from endpoint.wire.broker_config import BrokerConfig
from endpoint.wire.config_base import StrictConfig

KEEP_VERSIONS = 8  # student versions the registry keeps besides the first and those in use

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class LabelledData(StrictConfig):
    """Labelled frames: a YOLO folder (images/<split>, labels/<split>, data.yaml) or the synthetic scenario."""

    folder: Path | None = Field(None, description="YOLO data set folder")
    synthetic_domain: str | None = Field(None, description="a domain of the synthetic scenario (day, dusk)")
    seed: int = Field(0, description="synthetic scenario seed (the endpoint's source seed for its held-out set)")
    frames: int = Field(200, ge=1, description="at most this many frames (of a folder split, or synthetic)")

    @model_validator(mode="after")
    def _one_source(self) -> "LabelledData":
        if (self.folder is None) == (self.synthetic_domain is None):
            raise ValueError("set exactly one of folder and synthetic_domain")
        return self

    def items(self, split: Literal["train", "val"]) -> list[LabelledImage]:
        if self.folder is not None:
            from edge.yolo_dataset import folder_items

            return folder_items(self.folder, split)[: self.frames]
        from edge.yolo_dataset import scenario_items
        from endpoint.sources.scenario import SyntheticScenario

        # held-out frames start far past anything an endpoint streams
        start = 0 if split == "train" else 1_000_000
        return scenario_items(SyntheticScenario(seed=self.seed), self.synthetic_domain, start, self.frames, split)

    def missing(self, splits: tuple[str, ...], names: bool = False) -> list[str]:
        """Paths of this YOLO folder that ``splits`` (and ``names``: data.yaml) need but that do not exist."""
        if self.folder is None:
            return []
        wanted = [self.folder / "images" / split for split in splits] + ([self.folder / "data.yaml"] if names else [])
        return [str(path) for path in wanted if not path.exists()]

    def class_names(self) -> list[str]:
        if self.folder is not None:
            from edge.yolo_dataset import folder_class_names

            return folder_class_names(self.folder)
        from endpoint.sources.scenario import CLASS_NAMES

        return list(CLASS_NAMES)

    def domain(self) -> str:
        return self.synthetic_domain or self.folder.name


class LearnerEndpoint(StrictConfig):
    """An endpoint the learner plans for, pushes to, and scores on its held-out labelled frames."""

    id: str = Field(pattern=ID_PATTERN, description="the endpoint's endpoint_id")
    val: LabelledData | None = Field(None, description="held-out frames that score this endpoint (none: unscored)")


class LearnerConfig(StrictConfig):
    """Everything the learner needs; its state persists in ``state_dir``."""

    broker: BrokerConfig = Field(default_factory=BrokerConfig, description="the fleet's broker; an empty "
                                 "client_id means 'edgeloop-learner' (one learner per fleet)")
    store: StoreConfig = Field(default_factory=StoreConfig, description="the store ingest writes frames to")
    state_dir: Path = Field(Path("edgeloop-data/learner"),
                            description="signing key, models, replay, scheduler history and the round state")
    public_key_dir: Path | None = Field(
        None, description="also copy the public key endpoints verify pushes with here (a volume they mount)")
    fleet: str = Field("default", pattern=ID_PATTERN, description="fleet group the signed pushes are bound to")
    bootstrap: LabelledData | None = Field(
        None, description="first-domain data the first teacher and student train on (unless learning gives .pt "
                          "weights for both)")
    endpoints: list[LearnerEndpoint] = Field(min_length=1, description="endpoints taking part")
    domain: str = Field("live", description="name of the current domain (a label in results and plans)")
    policy: str = Field("adaptive", description="bandwidth scheduler policy")
    budget_kbps: float = Field(1000.0, gt=0, description="link budget per endpoint, kilobits/s")
    round_s: float = Field(60.0, gt=0, description="schedule: link seconds of a round; learning starts this long "
                                                    "after the round's plans went out")
    min_frames: int = Field(0, ge=0, description="start learning as soon as this many frames of the round are "
                                                 "stored (0: only the schedule)")
    drift_agreement_drop: float = Field(
        0.0, ge=0, le=1, description="start learning early when the deployed student's label-free agreement with "
                                     "the teacher falls this far below last round's (0: off)")
    frames: int = Field(0, ge=0, description="frames a plan-following source streams per round; 0 for cameras")
    labels: list[str] = Field(default_factory=lambda: ["import", "teacher"],
                              description="label sources in order of preference; 'oracle' trusts labels that "
                                          "endpoints send, so it is for labs and scenario data only")
    push_timeout_s: float = Field(60.0, gt=0, description="how long a push waits for the endpoint's ack")
    push_regressions: bool = Field(False, description="push a round's student even when it scores below the "
                                                      "deployed one on the endpoint's held-out frames (default: "
                                                      "such a push is skipped and logged)")
    keep_versions: int = Field(KEEP_VERSIONS, ge=1, description="student versions the registry keeps besides the "
                                                                 "first and those an endpoint runs or is due; older "
                                                                 "ones are deleted after each round")
    rounds: int = Field(0, ge=0, description="stop after this many rounds (0: run until stopped)")
    metrics_port: int = Field(0, ge=0, le=65535, description="serve Prometheus metrics on this port (0: off)")
    learning: LearningConfig = Field(default_factory=LearningConfig, description="models, epochs, replay")

    @field_validator("policy")
    @classmethod
    def _known_policy(cls, name: str) -> str:
        return check_policy(name)

    @field_validator("labels")
    @classmethod
    def _known_labels(cls, names: list[str]) -> list[str]:
        return check_labels(names)

    def check_state(self) -> None:
        """Raise ValueError when ``state_dir`` holds no learner state yet and nothing says how to make the first one,
        or holds one that cannot be read (a restart would fail on it again and again)."""
        from edge.learner.state import STATE_FILE, load_state

        if not (self.state_dir / STATE_FILE).exists():
            if self.bootstrap is None:
                raise ValueError(f"{self.state_dir} holds no learner state yet: its first start needs bootstrap data "
                                 "(a YOLO folder or a synthetic domain) for the first models and their INT8 "
                                 "calibration")
            return
        try:
            load_state(self.state_dir)
        except (OSError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
            raise ValueError(f"{self.state_dir / STATE_FILE} is unreadable: {str(exc)[:300]}") from None

    def check_folders(self) -> None:
        """Raise ValueError naming each configured YOLO folder path that is missing: a typo fails at start."""
        missing = [f"bootstrap: {path}" for path in self.bootstrap.missing(("train", "val"), names=True)] \
            if self.bootstrap else []
        missing += [f"endpoint {e.id} val: {path}" for e in self.endpoints if e.val for path in e.val.missing(("val",))]
        if missing:
            raise ValueError("no such YOLO data (a folder of images/{train,val}, labels/{train,val} and data.yaml; "
                             "or synthetic_domain: day): " + "; ".join(missing))


def check_policy(name: str) -> str:
    """``name`` if it is a scheduler policy the live loop runs; ValueError listing them otherwise."""
    from edge.scheduler.policies import live_policy_names

    if name not in live_policy_names():
        raise ValueError(f"unknown scheduler policy {name!r}; choose from {', '.join(live_policy_names())}")
    return name


def check_labels(names: list[str]) -> list[str]:
    """``names`` if each is a label source; ValueError listing them otherwise."""
    from edge.labels import LABEL_SOURCES

    unknown = [n for n in names if n not in LABEL_SOURCES]
    if unknown or not names:
        raise ValueError(f"unknown label sources {unknown or names!r}; choose from {', '.join(LABEL_SOURCES)}")
    return names
