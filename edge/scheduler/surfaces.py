"""Measured response surfaces: the file format, loading, and the interpolated "true" surface a simulator plays.

A surface file holds, per scenario, points (upload bytes, push option, deployed mAP50-95)
measured from real rounds: fine-tune and distill on that many new-domain frames, push, evaluate.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edge.scheduler.lookahead import Situation
from edge.scheduler.policy import PushOption

SURFACE_FORMAT_VERSION = 1


class SurfaceOption(BaseModel):
    """A push option as measured: kind, the student it deploys, its mean size on the link."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, description="e.g. skip, delta-head, full-student")
    kind: Literal["skip", "delta", "full"]
    student: str = Field("", description="the student the push deploys; '' for skip")
    bytes: int = Field(ge=0, description="mean measured push payload bytes")
    description: str = Field("", description="how the pushed model was made")
    trained_fraction: float | None = Field(None, ge=0.0, le=1.0,
                                           description="share of the student's parameters the push retrains")


class SurfacePoint(BaseModel):
    """One measurement: after uploading ``upload_bytes`` and pushing ``option``, the deployed mAP."""

    model_config = ConfigDict(extra="forbid")
    upload_bytes: int = Field(ge=0, description="bytes of new-domain frames the edge trained on")
    frames: int = Field(ge=0, description="how many frames those bytes were")
    option: str = Field(description="name of a SurfaceOption")
    push_bytes: int = Field(ge=0, description="measured payload bytes of this push")
    map50_95: float = Field(ge=0.0, le=1.0, description="deployed student's mAP50-95 on held-out new-domain frames")
    map50: float | None = Field(None, ge=0.0, le=1.0)
    seed: int = Field(0, description="training seed of the measurement")


class ScenarioSurface(BaseModel):
    """The points of one drift (old domain → new domain) and the options measured."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    description: str = ""
    bytes_per_frame: float = Field(gt=0, description="mean JPEG bytes of one uploaded frame")
    base_student: str = Field(min_length=1, description="the student deployed when the drift begins")
    eval_frames: int = Field(ge=1, description="held-out frames each mAP was measured on")
    options: list[SurfaceOption] = Field(min_length=2)
    points: list[SurfacePoint] = Field(min_length=2)
    student_params: int | None = Field(None, ge=1, description="parameters of the base student")
    push_overhead_bytes: int | None = Field(
        None, ge=0, description="bytes a push adds to its payload: manifest, signature, framing")

    @model_validator(mode="after")
    def _consistent(self) -> "ScenarioSurface":
        names = {o.name for o in self.options}
        if len(names) != len(self.options):
            raise ValueError("option names must be unique")
        if not any(o.kind == "skip" for o in self.options):
            raise ValueError("a scenario needs its 'skip' option (the unadapted student)")
        unknown = {p.option for p in self.points} - names
        if unknown:
            raise ValueError(f"points name unknown options {sorted(unknown)}")
        fulls = {o.student for o in self.options if o.kind == "full"}
        for o in self.options:
            if o.kind == "delta" and o.student not in fulls:
                raise ValueError(f"delta {o.name!r} needs a full option of student {o.student!r} to compare with")
            if not any(p.option == o.name for p in self.points):
                raise ValueError(f"option {o.name!r} has no measured points")
        return self


class SurfaceFile(BaseModel):
    """A whole file: where the numbers came from, and one surface per scenario."""

    model_config = ConfigDict(extra="forbid")
    version: Literal[1] = SURFACE_FORMAT_VERSION
    metric: Literal["map50_95"] = "map50_95"
    created: str = Field(description="ISO time of the measurement")
    source: str = Field(description="the command that measured it")
    settings: dict[str, Any] = Field(default_factory=dict, description="training settings of the measurement")
    scenarios: list[ScenarioSurface] = Field(min_length=1)


class SurfaceError(ValueError):
    """A surface file that is missing or malformed; the text says what to do."""


def load_surfaces(path: str | Path) -> SurfaceFile:
    """Read and check a surface file."""
    path = Path(path)
    if not path.exists():
        raise SurfaceError(f"no response-surface file at {path}")
    try:
        return SurfaceFile.model_validate(json.loads(path.read_text()))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise SurfaceError(f"{path} is not a valid response-surface file: {exc}") from None


def save_surfaces(surfaces: SurfaceFile, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(surfaces.model_dump_json(indent=1) + "\n")
    return path


def _isotonic(y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Pool-adjacent-violators: the closest non-decreasing sequence (weighted least squares)."""
    blocks: list[list[float]] = []  # [mean, weight, count]
    for value, weight in zip(y, weights):
        blocks.append([float(value), float(weight), 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, n2 = blocks.pop()
            m1, w1, n1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, n1 + n2])
    return np.concatenate([np.full(n, m) for m, _, n in blocks])


class TrueSurface:
    """Deployed mAP of any (data so far, push) pair, interpolated from one scenario's measured points.

    Per option, repeats at one upload size are averaged and the curve is made non-decreasing in
    data (more data does not hurt in expectation; left alone, measurement noise would reward odd
    sizes); between points it is linear, past the last point it holds (saturation).
    """

    def __init__(self, scenario: ScenarioSurface):
        self.scenario = scenario
        self.options = {o.name: o for o in scenario.options}
        self._curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for option in scenario.options:
            pts = [p for p in scenario.points if p.option == option.name]
            xs = np.array(sorted({p.upload_bytes for p in pts}), dtype=np.float64)
            groups = [[p.map50_95 for p in pts if p.upload_bytes == x] for x in xs]
            ys = np.array([np.mean(g) for g in groups])
            if option.kind != "skip":
                ys = _isotonic(ys, np.array([len(g) for g in groups], dtype=np.float64))
            self._curves[option.name] = (xs, ys)
        skip = next(o for o in scenario.options if o.kind == "skip")
        self.base_map = float(np.mean(self._curves[skip.name][1]))
        self.full_by_student = {o.student: o for o in scenario.options if o.kind == "full"}

    def option_map(self, name: str, x_bytes) -> np.ndarray:
        """Measured curve of one option at ``x_bytes`` of uploaded data (from the base student)."""
        xs, ys = self._curves[name]
        return np.interp(np.asarray(x_bytes, dtype=np.float64), xs, ys)

    def push_options(self, deployed_student: str) -> list[PushOption]:
        """What can be pushed to an endpoint running ``deployed_student``: deltas only onto their own student."""
        out = []
        for o in self.scenario.options:
            if o.kind == "skip" or (o.kind == "delta" and o.student != deployed_student):
                continue
            out.append(PushOption(o.name, max(1, o.bytes), o.kind, o.student))
        return out

    def after(self, sit: Situation, upload_bytes, option: PushOption) -> np.ndarray:
        """True deployed mAP after uploading ``upload_bytes`` more and pushing ``option``.

        A full push deploys the measured student. A delta retunes the head of the model the last
        full push deployed (the anchor): it gains what the measured head-only curve gains from the
        data since, never less than the deployed mAP and never more than the full student's.
        """
        x = sit.x_bytes + np.asarray(upload_bytes, dtype=np.float64)
        deployed = np.broadcast_to(np.asarray(sit.map_deployed, dtype=np.float64), np.shape(x))
        if option.kind == "skip":
            return deployed.copy()
        full = self.option_map(self.full_by_student[option.student].name, x)
        if option.kind == "full":
            return full
        retuned = sit.anchor_map + self.option_map(option.name, x) - self.option_map(option.name, sit.anchor_x_bytes)
        return np.clip(retuned, deployed, np.maximum(deployed, full))


__all__ = ["SURFACE_FORMAT_VERSION", "ScenarioSurface", "SurfaceError", "SurfaceFile", "SurfaceOption",
           "SurfacePoint", "TrueSurface", "load_surfaces", "save_surfaces"]
