"""``edgeloop bench scheduler`` on a small made-up surface file, and its refusal without measurements."""

from __future__ import annotations

import json
from argparse import Namespace

from edge.scheduler.surfaces import save_surfaces
from pipelines.bench_scheduler import run_bench_scheduler
from tests.edge.scheduler.fakes import fake_surface_file


def test_bench_prints_every_policy_and_writes_plot_and_json(tmp_path, capsys):
    surfaces = save_surfaces(fake_surface_file(), tmp_path / "surfaces.json")
    args = Namespace(out=str(tmp_path / "out"), surfaces=str(surfaces), rounds=4, seed=0)
    assert run_bench_scheduler(args) == 0
    printed = capsys.readouterr().out
    for name in ("adaptive", "fixed-20-80", "fixed-50-50", "fixed-80-20", "data-first", "model-first", "oracle"):
        assert name in printed
    assert "adaptive vs oracle" in printed
    assert (tmp_path / "out" / "scheduler.png").stat().st_size > 10_000
    rows = json.loads((tmp_path / "out" / "scheduler.json").read_text())["results"]
    assert len(rows) == 9 * 7 and all(0 <= r["data_share"] <= 1 for r in rows)


def test_bench_without_measured_surfaces_says_how_to_measure(tmp_path, capsys):
    args = Namespace(out=str(tmp_path / "out"), surfaces=str(tmp_path / "absent.json"), rounds=4, seed=0)
    assert run_bench_scheduler(args) == 2
    assert "python -m pipelines.measure_response" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()


def test_bench_offers_sparse_fractions_and_says_they_are_derived(tmp_path, capsys):
    from tests.edge.scheduler.test_sparse_options import derivable

    surfaces = fake_surface_file().model_copy(update={"scenarios": [derivable()]})
    path = save_surfaces(surfaces, tmp_path / "surfaces.json")
    args = Namespace(out=str(tmp_path / "out"), surfaces=str(path), rounds=4, seed=0)
    assert run_bench_scheduler(args) == 0
    assert "sparse push options of day->dusk: DERIVED" in capsys.readouterr().out
    rows = json.loads((tmp_path / "out" / "scheduler.json").read_text())["results"]
    pushed = {name for r in rows for name in r["push_counts"]}
    assert any(name.startswith("sparse-") for name in pushed)  # the policies were offered them and took some
