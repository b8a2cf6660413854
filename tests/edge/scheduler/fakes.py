"""Made-up response surfaces and curves for unit tests only: they check the machinery, not the numbers."""

from __future__ import annotations

import numpy as np

from edge.scheduler.policy import PushOption
from edge.scheduler.surfaces import ScenarioSurface, SurfaceFile, SurfaceOption, SurfacePoint

BYTES_PER_FRAME = 12_000.0
DELTA = PushOption("delta-head", 60_000, "delta", "nano")
PICO = PushOption("full-pico", 300_000, "full", "pico")
NANO = PushOption("full-nano", 900_000, "full", "nano")
OPTIONS = [DELTA, PICO, NANO]


def fake_scenario(name: str = "day->dusk", base: float = 0.10, noise: float = 0.0, seed: int = 0) -> ScenarioSurface:
    """Log-shaped learning curves (not the fitted family), each push with its own ceiling."""
    rng = np.random.default_rng(seed)
    ceilings = {DELTA.name: 0.25, PICO.name: 0.36, NANO.name: 0.45}
    options = [SurfaceOption(name="skip", kind="skip", bytes=0)]
    options += [SurfaceOption(name=o.name, kind=o.kind, student=o.student, bytes=o.bytes) for o in OPTIONS]
    points = []
    for frames in (0, 25, 50, 100, 200, 400, 800):
        x = int(frames * BYTES_PER_FRAME)
        points.append(SurfacePoint(upload_bytes=x, frames=frames, option="skip", push_bytes=0, map50_95=base))
        for o in OPTIONS:
            value = base + (ceilings[o.name] - base) * np.log1p(frames / 40) / np.log1p(800 / 40)
            value = float(np.clip(value + rng.normal(0, noise), 0, 1))
            points.append(SurfacePoint(upload_bytes=x, frames=frames, option=o.name, push_bytes=o.bytes,
                                       map50_95=value))
    return ScenarioSurface(name=name, bytes_per_frame=BYTES_PER_FRAME, base_student="nano", eval_frames=100,
                           options=options, points=points)


def fake_surface_file() -> SurfaceFile:
    return SurfaceFile(created="2024-01-01T00:00:00+00:00", source="tests/edge/scheduler/fakes.py",
                       scenarios=[fake_scenario()])
