"""The surface file format and the simulator's true surface."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge.scheduler.lookahead import Situation
from edge.scheduler.surfaces import SurfaceError, TrueSurface, load_surfaces, save_surfaces
from tests.edge.scheduler.fakes import DELTA, NANO, PICO, fake_scenario, fake_surface_file


def test_round_trip(tmp_path):
    path = save_surfaces(fake_surface_file(), tmp_path / "s.json")
    assert load_surfaces(path) == fake_surface_file()


def test_missing_and_malformed_files_say_so(tmp_path):
    with pytest.raises(SurfaceError, match="no response-surface file"):
        load_surfaces(tmp_path / "absent.json")
    raw = json.loads(fake_surface_file().model_dump_json())
    raw["scenarios"][0]["points"][0]["option"] = "full-mystery"
    (tmp_path / "bad.json").write_text(json.dumps(raw))
    with pytest.raises(SurfaceError, match="unknown options"):
        load_surfaces(tmp_path / "bad.json")


def test_interpolation_is_monotone_and_holds_past_the_last_point():
    noisy = TrueSurface(fake_scenario(noise=0.03, seed=3))
    x = np.linspace(0, 2e7, 400)
    for name in (DELTA.name, PICO.name, NANO.name):
        assert np.all(np.diff(noisy.option_map(name, x)) >= -1e-12)
    clean = TrueSurface(fake_scenario())
    assert clean.option_map(NANO.name, 9.6e6) == pytest.approx(0.45)
    assert clean.option_map(NANO.name, 5e7) == pytest.approx(0.45)


def test_true_pushes():
    surface = TrueSurface(fake_scenario())
    fresh = Situation(0.0, 0.1, 0.1, 0.0, 0.1, "nano", float(NANO.bytes))
    assert surface.after(fresh, 1.2e6, NANO) == pytest.approx(surface.option_map(NANO.name, 1.2e6))
    assert surface.after(fresh, 1.2e6, DELTA) == pytest.approx(surface.option_map(DELTA.name, 1.2e6))
    # a delta after a full push adds what the head-only curve gains since, capped by the full student
    anchor = float(surface.option_map(NANO.name, 1.2e6))
    adapted = Situation(1.2e6, anchor, 0.1, 1.2e6, anchor, "nano", float(NANO.bytes))
    gain = surface.option_map(DELTA.name, 2.4e6) - surface.option_map(DELTA.name, 1.2e6)
    assert 0 < gain and surface.after(adapted, 1.2e6, DELTA) == pytest.approx(anchor + gain)
    above = Situation(1.2e6, 0.44, 0.1, 1.2e6, 0.44, "nano", float(NANO.bytes))
    assert surface.after(above, 1.2e6, DELTA) == pytest.approx(0.44)  # never above the full student, never worse
    assert [o.name for o in surface.push_options("pico")] == [PICO.name, NANO.name]  # no delta onto another student
