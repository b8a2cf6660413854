"""The simulator is reproducible, records planned beside spent bytes, and the oracle bounds adaptive."""

from __future__ import annotations

import pytest

from edge.scheduler.simulate import SimConfig, budget_grid, simulate_policy
from tests.edge.scheduler.fakes import fake_scenario

CONFIG = SimConfig(rounds=8, rounds_per_domain=4, endpoints=2)


def test_same_seed_same_run_other_seed_other_luck():
    scenarios = [fake_scenario()]
    a = simulate_policy(scenarios, "adaptive", 1_000_000, CONFIG)
    b = simulate_policy(scenarios, "adaptive", 1_000_000, CONFIG)
    c = simulate_policy(scenarios, "adaptive", 1_000_000, SimConfig(rounds=8, rounds_per_domain=4, seed=1))
    assert a.records == b.records and a.mean_map == b.mean_map
    assert [r.map_after for r in a.records] != [r.map_after for r in c.records]


def test_records_hold_planned_and_spent_bytes():
    run = simulate_policy([fake_scenario()], "fixed-50-50", 400_000, CONFIG)
    assert len(run.records) == CONFIG.rounds * CONFIG.endpoints
    for r in run.records:
        assert r.planned_upload_bytes == 200_000
        # whole frames only: spent stays within one frame under the plan
        assert r.planned_upload_bytes - 30_000 < r.spent_upload_bytes <= r.planned_upload_bytes
        assert r.frames_uploaded > 0
        if r.push_kind == "delta":
            assert r.spent_push_bytes == pytest.approx(r.planned_push_bytes, rel=0.3)
    assert run.upload_bytes == sum(r.spent_upload_bytes for r in run.records)


def test_budget_grid_spans_starved_to_plentiful():
    grid = budget_grid([fake_scenario()], CONFIG)
    assert grid[0] < 60_000 and grid[-1] > 900_000 + CONFIG.frames_per_round * 12_000
    assert grid == sorted(grid)


@pytest.mark.parametrize("budget", [250_000, 2_000_000])
def test_oracle_is_not_beaten_by_fixed_ratios(budget):
    runs = {n: simulate_policy([fake_scenario()], n, budget, CONFIG) for n in ("oracle", "fixed-50-50", "adaptive")}
    assert runs["oracle"].mean_map >= runs["fixed-50-50"].mean_map
    assert runs["adaptive"].mean_map >= runs["fixed-50-50"].mean_map
