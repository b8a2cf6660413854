"""Each baseline splits the budget the way its name says, and pushes only the student the edge recommends."""

from __future__ import annotations

import pytest

from edge.scheduler.baselines import DataFirstPolicy, FixedRatioPolicy, ModelFirstPolicy, recommended_student
from edge.scheduler.policies import make_policy
from edge.scheduler.policy import SKIP, Budget, EndpointState, PushOption
from tests.edge.scheduler.fakes import BYTES_PER_FRAME, DELTA, NANO, OPTIONS, PICO

STATE = EndpointState("cam-1", map_deployed=0.2, map_base=0.1, bytes_per_frame=BYTES_PER_FRAME,
                      frames_per_round=100, deployed_student="nano")  # can upload at most 1.2 MB a round
TEACHER = PushOption("full-teacher", 1_400_000, "full", "teacher")  # bigger, but not what the edge recommends
SPARSE = [PushOption(f"sparse-{pct:g}", int(NANO.bytes * pct / 100) + 4_000, "delta", "nano") for pct in (1, 5, 10, 20)]


@pytest.mark.parametrize("name, data_percent", [("fixed-20-80", 20), ("fixed-50-50", 50), ("fixed-80-20", 80)])
@pytest.mark.parametrize("budget", [100_000, 400_000, 1_000_000, 5_000_000])
def test_fixed_ratio_uploads_its_share_and_pushes_the_largest_recommended_push_that_fits(name, data_percent, budget):
    plan = make_policy(name).plan(Budget(budget), [STATE], [], OPTIONS).endpoints[0]
    assert plan.upload_bytes == budget * data_percent // 100
    model_share = budget - plan.upload_bytes
    fitting = [o for o in OPTIONS if o.bytes <= model_share and o.student == "nano"]
    assert plan.push == (max(fitting, key=lambda o: o.bytes) if fitting else SKIP)


def test_fixed_ratio_names():
    assert [FixedRatioPolicy(p).name for p in (20, 50, 80)] == ["fixed-20-80", "fixed-50-50", "fixed-80-20"]
    with pytest.raises(ValueError):
        FixedRatioPolicy(120)


@pytest.mark.parametrize("budget, upload, push", [
    (500_000, 500_000, SKIP),  # all data, nothing left to push
    (1_250_000, 1_200_000, SKIP),  # every frame; 50 KB left is too little for a delta
    (1_300_000, 1_200_000, DELTA),
    (1_600_000, 1_200_000, DELTA),  # the smaller pico student fits, but the edge recommends nano
    (5_000_000, 1_200_000, NANO),
])
def test_data_first_uploads_every_frame_it_can_then_pushes(budget, upload, push):
    plan = DataFirstPolicy().plan(Budget(budget), [STATE], [], OPTIONS).endpoints[0]
    assert (plan.upload_bytes, plan.push) == (upload, push)


@pytest.mark.parametrize("budget, upload, push", [
    (50_000, 50_000, SKIP),
    (100_000, 40_000, DELTA),
    (500_000, 440_000, DELTA),
    (1_000_000, 100_000, NANO),
    (5_000_000, 1_200_000, NANO),  # data is capped by the frames the endpoint sees
])
def test_model_first_pushes_the_largest_recommended_then_uploads(budget, upload, push):
    plan = ModelFirstPolicy().plan(Budget(budget), [STATE], [], OPTIONS).endpoints[0]
    assert (plan.upload_bytes, plan.push) == (upload, push)


def test_a_shared_link_is_split_equally():
    states = [STATE, EndpointState("cam-2", 0.2, 0.1, bytes_per_frame=BYTES_PER_FRAME, frames_per_round=100)]
    allocation = make_policy("fixed-50-50").plan(Budget(800_000, shared=True), states, [], OPTIONS)
    assert [p.upload_bytes for p in allocation.endpoints] == [200_000, 200_000]
    assert [p.push for p in allocation.endpoints] == [DELTA, DELTA]
    assert allocation.upload_bytes + allocation.push_bytes <= 800_000


def test_sample_rate_offers_enough_frames_for_the_upload():
    plan = make_policy("fixed-50-50").plan(Budget(1_200_000), [STATE], [], OPTIONS).endpoints[0]
    assert plan.sample_rate == pytest.approx(plan.upload_bytes / BYTES_PER_FRAME / 100)


@pytest.mark.parametrize("name", ["fixed-20-80", "fixed-50-50", "fixed-80-20", "data-first", "model-first"])
def test_baselines_never_push_a_bigger_model_the_edge_does_not_recommend(name):
    plan = make_policy(name).plan(Budget(20_000_000), [STATE], [], [*OPTIONS, TEACHER]).endpoints[0]
    assert plan.push == NANO


@pytest.mark.parametrize("model_share, push", [
    (8_000, SKIP), (20_000, SPARSE[0]), (60_000, DELTA), (100_000, SPARSE[2]), (400_000, SPARSE[3]),
    (1_000_000, NANO)])
def test_model_first_takes_the_largest_sparse_fraction_that_fits(model_share, push):
    state = EndpointState("cam-1", 0.2, 0.1, bytes_per_frame=BYTES_PER_FRAME, frames_per_round=0,
                          deployed_student="nano")  # no frames: the whole budget is the model's share
    plan = make_policy("model-first").plan(Budget(model_share), [state], [], [*OPTIONS, *SPARSE, TEACHER])
    assert plan.endpoints[0].push == push


def test_recommended_student_without_a_deployed_one_is_the_one_deltas_apply_to_else_the_smallest():
    unknown = EndpointState("cam-1", 0.2, 0.1)
    assert recommended_student(unknown, [*OPTIONS, TEACHER]) == "nano"
    assert recommended_student(unknown, [NANO, PICO, TEACHER]) == "pico"
