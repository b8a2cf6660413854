"""Sparse-fraction push options on a response surface: measured where the file has them, else derived.

A sparse push retrains a fraction of the student's parameters and sends only the changed INT8
values plus their positions. Until such pushes are measured, each fraction is derived from the
measured points: its bytes from the codec's size (a gzipped bit mask costs about the mask's
entropy, one byte per changed value, plus the measured push overhead), its mAP interpolated by
trained fraction between the measured pushes that bracket it (skip retrains none, each layer-frozen
delta its measured share, the full student all). The derived points say so in their option.
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import numpy as np

from edge.scheduler.surfaces import ScenarioSurface, SurfaceOption, SurfacePoint

SPARSE_PERCENTS: tuple[float, ...] = (1.0, 5.0, 10.0, 20.0)
SPARSE_PREFIX = "sparse-"
Provenance = Literal["measured", "derived", "none"]


def sparse_name(percent: float) -> str:
    """The option name the scheduler and the lab share: ``sparse-10`` for 10 %."""
    return f"{SPARSE_PREFIX}{percent:g}"


def sparse_push_bytes(params: int, fraction: float, overhead_bytes: int) -> int:
    """Bytes of a push that changes ``fraction`` of ``params`` INT8 values: mask entropy, values, overhead."""
    if not 0.0 < fraction <= 1.0 or params < 1:
        raise ValueError(f"a sparse push needs 0 < fraction <= 1 and parameters (got {fraction}, {params})")
    entropy_bits = 0.0 if fraction == 1.0 else -(fraction * math.log2(fraction)
                                                 + (1 - fraction) * math.log2(1 - fraction))
    return overhead_bytes + math.ceil(params * (entropy_bits / 8 + fraction))


def sparse_provenance(scenario: ScenarioSurface) -> Provenance:
    """Whether the scenario's sparse options were measured, can be derived, or neither."""
    if any(o.name.startswith(SPARSE_PREFIX) for o in scenario.options):
        return "measured"
    return "derived" if _derivable(scenario) else "none"


def with_sparse_options(scenario: ScenarioSurface, percents: Sequence[float] = SPARSE_PERCENTS
                        ) -> tuple[ScenarioSurface, Provenance]:
    """The scenario with one option per sparse fraction: as measured, else derived (see the module docstring)."""
    provenance = sparse_provenance(scenario)
    if provenance != "derived":
        return scenario, provenance
    base = scenario.base_student
    full = next(o for o in scenario.options if o.kind == "full" and o.student == base)
    anchors = _anchors(scenario, full)
    options, points = list(scenario.options), list(scenario.points)
    for percent in percents:
        fraction = percent / 100
        (lo_f, lo), (hi_f, hi) = _bracket(anchors, fraction)
        name = sparse_name(percent)
        push_bytes = sparse_push_bytes(scenario.student_params, fraction, scenario.push_overhead_bytes)
        options.append(SurfaceOption(
            name=name, kind="delta", student=base, bytes=push_bytes, trained_fraction=fraction,
            description=f"DERIVED, not measured: {percent:g} % of the student's parameters as INT8 values and a "
                        f"bit mask; mAP interpolated by trained fraction between {lo} and {hi}"))
        xs = sorted({p.upload_bytes for p in scenario.points if p.option in (lo, hi)})
        weight = (fraction - lo_f) / (hi_f - lo_f) if hi_f > lo_f else 0.0
        for x in xs:
            value = (1 - weight) * _curve(scenario, lo, x) + weight * _curve(scenario, hi, x)
            points.append(SurfacePoint(upload_bytes=x, frames=_frames(scenario, x), option=name,
                                       push_bytes=push_bytes if x else 0, map50_95=float(np.clip(value, 0, 1))))
    return scenario.model_copy(update={"options": options, "points": points}), provenance


def _derivable(scenario: ScenarioSurface) -> bool:
    return (scenario.student_params is not None and scenario.push_overhead_bytes is not None
            and any(o.kind == "full" and o.student == scenario.base_student for o in scenario.options))


def _anchors(scenario: ScenarioSurface, full: SurfaceOption) -> list[tuple[float, str]]:
    """Measured pushes of the base student by trained fraction: skip (0), layer-frozen deltas, the full student (1)."""
    skip = next(o for o in scenario.options if o.kind == "skip")
    deltas = [(o.trained_fraction, o.name) for o in scenario.options
              if o.kind == "delta" and o.student == scenario.base_student and o.trained_fraction is not None]
    return sorted([(0.0, skip.name), *deltas, (1.0, full.name)])


def _bracket(anchors: list[tuple[float, str]], fraction: float) -> tuple[tuple[float, str], tuple[float, str]]:
    """The measured pushes with the nearest trained fractions at or below and above ``fraction``."""
    lower = max(a for a in anchors if a[0] <= fraction)
    return lower, min((a for a in anchors if a[0] > fraction), default=lower)


def _curve(scenario: ScenarioSurface, option: str, x: int) -> float:
    """The measured mean mAP of one option at ``x`` upload bytes, linear between its measured sizes."""
    pts = [p for p in scenario.points if p.option == option]
    xs = np.array(sorted({p.upload_bytes for p in pts}), dtype=np.float64)
    ys = np.array([np.mean([p.map50_95 for p in pts if p.upload_bytes == v]) for v in xs])
    return float(np.interp(x, xs, ys))


def _frames(scenario: ScenarioSurface, x: int) -> int:
    return next((p.frames for p in scenario.points if p.upload_bytes == x), round(x / scenario.bytes_per_frame))


__all__ = ["SPARSE_PERCENTS", "SPARSE_PREFIX", "sparse_name", "sparse_provenance", "sparse_push_bytes",
           "with_sparse_options"]
