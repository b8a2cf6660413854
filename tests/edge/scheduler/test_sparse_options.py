"""Sparse-fraction push options on a response surface: kept when measured, derived (and said so) when not."""

from __future__ import annotations

import numpy as np
import pytest

from edge.scheduler.sparse_options import (SPARSE_PERCENTS, sparse_name, sparse_provenance, sparse_push_bytes,
                                           with_sparse_options)
from edge.scheduler.surfaces import SurfaceOption, SurfacePoint, TrueSurface
from tests.edge.scheduler.fakes import DELTA, NANO, fake_scenario

PARAMS, OVERHEAD, HEAD_FRACTION = 300_000, 1_000, 0.4


def derivable():
    """The made-up scenario with what a derivation needs: parameter count, push overhead, the delta's fraction."""
    scenario = fake_scenario()
    options = [o.model_copy(update={"trained_fraction": HEAD_FRACTION}) if o.name == DELTA.name else o
               for o in scenario.options]
    return scenario.model_copy(update={"options": options, "student_params": PARAMS, "push_overhead_bytes": OVERHEAD})


def test_sparse_push_bytes_is_mask_entropy_plus_one_byte_per_changed_value():
    sizes = [sparse_push_bytes(PARAMS, p / 100, OVERHEAD) for p in SPARSE_PERCENTS]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
    for p, size in zip(SPARSE_PERCENTS, sizes):
        f = p / 100
        assert OVERHEAD + PARAMS * f < size < OVERHEAD + PARAMS * (f + 1 / 8)  # a gzipped mask beats a raw one
    assert sparse_push_bytes(PARAMS, 1.0, OVERHEAD) == OVERHEAD + PARAMS
    with pytest.raises(ValueError):
        sparse_push_bytes(PARAMS, 0.0, OVERHEAD)


def test_each_fraction_becomes_an_option_of_the_base_student_between_its_measured_neighbours():
    scenario, provenance = with_sparse_options(derivable())
    assert provenance == "derived"
    sparse = {o.name: o for o in scenario.options if o.name.startswith("sparse-")}
    assert list(sparse) == [sparse_name(p) for p in SPARSE_PERCENTS] == ["sparse-1", "sparse-5", "sparse-10",
                                                                          "sparse-20"]
    for percent, option in zip(SPARSE_PERCENTS, sparse.values()):
        assert (option.kind, option.student) == ("delta", NANO.student)
        assert option.bytes == sparse_push_bytes(PARAMS, percent / 100, OVERHEAD)
        assert option.description.startswith("DERIVED")
    truth = TrueSurface(scenario)  # the simulator takes them like any measured option
    xs = np.array(sorted({p.upload_bytes for p in scenario.points}), dtype=float)
    base, head = truth.option_map("skip", xs), truth.option_map(DELTA.name, xs)
    for percent in SPARSE_PERCENTS:
        weight = percent / 100 / HEAD_FRACTION  # skip retrains nothing, the head delta HEAD_FRACTION
        np.testing.assert_allclose(truth.option_map(sparse_name(percent), xs), base + weight * (head - base),
                                   atol=1e-9)
    assert {o.name for o in truth.push_options(NANO.student)} >= set(sparse)


def test_measured_sparse_options_are_kept_as_they_are():
    scenario = derivable()
    measured = SurfaceOption(name="sparse-10", kind="delta", student="nano", bytes=33_000)
    points = [SurfacePoint(upload_bytes=x, frames=0, option="sparse-10", push_bytes=33_000, map50_95=0.3)
              for x in (0, 1_000_000)]
    scenario = scenario.model_copy(update={"options": [*scenario.options, measured],
                                           "points": [*scenario.points, *points]})
    kept, provenance = with_sparse_options(scenario)
    assert provenance == "measured" and kept is scenario


def test_without_a_parameter_count_there_is_nothing_to_derive():
    scenario = fake_scenario()
    assert sparse_provenance(scenario) == "none"
    assert with_sparse_options(scenario) == (scenario, "none")
