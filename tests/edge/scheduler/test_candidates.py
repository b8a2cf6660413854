"""The edge's evaluations of every student it trained, a data threshold in the data curve, and the push re-picked
after training."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge.scheduler.adaptive import AdaptivePolicy
from edge.scheduler.policy import SKIP, Budget, EndpointState, PushOption, RoundRecord
from edge.scheduler.response import ResponseParams, data_response, fit_response
from edge.scheduler.simulate import SimConfig, simulate_policy
from tests.edge.scheduler.fakes import fake_scenario

SMALL = PushOption("full-small", 300_000, "full", "small")
BIG = PushOption("full-big", 900_000, "full", "big")
OPTIONS = [SKIP, SMALL, BIG]
FRAME = 12_000


def _record(r: int, push: PushOption, frames: int, after: float, candidates: dict, x_before: int = 0) -> RoundRecord:
    return RoundRecord(
        round=r, endpoint_id="cam-1", policy="test", budget_bytes=0, planned_upload_bytes=frames * FRAME,
        spent_upload_bytes=frames * FRAME, planned_push_bytes=push.bytes, spent_push_bytes=push.bytes,
        frames_uploaded=frames, push=push.name, push_kind=push.kind, push_student=push.student,
        uploaded_bytes_before=x_before, map_base=0.05, anchor_uploaded_bytes=0, anchor_map=0.05, map_before=0.05,
        map_after=after, candidate_map=candidates.get(push.student, (None,))[0],
        candidate_bytes=candidates.get(push.student, (None, None))[1], candidates=candidates)


def test_round_record_candidates_survive_json():
    rec = _record(0, SMALL, 100, 0.14, {"small": (0.14, SMALL.bytes), "big": (0.08, BIG.bytes)})
    back = RoundRecord.from_dict(json.loads(json.dumps(rec.to_dict())))
    assert back == rec and back.candidates["big"] == (0.08, BIG.bytes)
    old = rec.to_dict()
    del old["candidates"]  # a record written before the field existed
    assert RoundRecord.from_dict(old).candidates == {}


def test_the_edges_evaluations_speak_for_students_never_pushed():
    # only the small student was ever pushed; the edge evaluated the big one too, every round, and it adapts worse
    history = [_record(r, SMALL, 150, 0.14, {"small": (0.14, SMALL.bytes), "big": (0.08, BIG.bytes)}, r * 150 * FRAME)
               for r in range(3)]
    fit = fit_response(history, ResponseParams(data_scale_bytes=100 * FRAME, full_scale_bytes=450_000),
                       options=OPTIONS)
    assert fit.counts["full:big"] == 3  # without the evaluations: 0, and the size curve would favour it
    assert fit.option_carry(BIG, optimism=1.0) < fit.option_carry(SMALL, optimism=1.0)
    state = EndpointState("cam-1", map_deployed=0.14, map_base=0.05, uploaded_bytes=450 * FRAME,
                          deployed_student="small", deployed_model_bytes=SMALL.bytes, anchor_uploaded_bytes=0,
                          anchor_map=0.05, bytes_per_frame=FRAME, frames_per_round=10)
    plan = AdaptivePolicy().plan(Budget(2_000_000), [state], history, OPTIONS).endpoints[0]
    assert plan.push.name != BIG.name


def test_data_curve_can_hold_a_threshold():
    k1 = ResponseParams(data_scale_bytes=40 * FRAME)
    steep = ResponseParams(data_scale_bytes=40 * FRAME, data_hill=6.0)
    assert data_response(k1, 40 * FRAME) == data_response(steep, 40 * FRAME) == pytest.approx(0.5)
    # k = 1 is the saturating power law of before; k > 1 waits for data, then rises fast
    assert data_response(k1, 10 * FRAME) == pytest.approx(1 - (1 + 0.25) ** -1)
    assert data_response(steep, 20 * FRAME) < 0.02 and data_response(steep, 80 * FRAME) > 0.98
    # a measured step (nothing up to ~25 frames, all of it from ~60) is fitted with an S-curve
    history = []
    for r, frames in enumerate([8, 16, 24, 32, 40, 48, 56, 64, 100, 160] * 2):
        value = float(np.interp(frames, [24, 64], [0.055, 0.14]))
        history.append(_record(r, SMALL, frames, value, {"small": (value, SMALL.bytes)}))
    fit = fit_response(history, ResponseParams(data_scale_bytes=100 * FRAME, full_scale_bytes=450_000),
                       options=OPTIONS)
    assert fit.params.data_hill > 2
    assert fit.rmse < 0.01


def test_repick_takes_the_better_evaluated_student_within_the_reserved_bytes():
    state = EndpointState("cam-1", map_deployed=0.05, map_base=0.05, deployed_student="small",
                          deployed_model_bytes=SMALL.bytes, bytes_per_frame=FRAME, frames_per_round=300)
    policy = AdaptivePolicy()
    policy.plan(Budget(3_000_000), [state], [], OPTIONS)  # no history: the size prior picks the big student
    evaluated = {"small": (0.14, SMALL.bytes), "big": (0.08, BIG.bytes)}
    assert policy.repick_push(state, BIG, evaluated) == SMALL
    assert policy.repick_push(state, SMALL, {"small": (0.08, SMALL.bytes), "big": (0.14, BIG.bytes)}) == SMALL
    assert policy.repick_push(state, BIG, {"small": (0.07, SMALL.bytes), "big": (0.08, BIG.bytes)}) == BIG
    assert policy.repick_push(state, SKIP, evaluated) == SKIP


def test_simulated_rounds_record_every_students_evaluation():
    run = simulate_policy([fake_scenario()], "adaptive", 3_000_000, SimConfig(rounds=3, endpoints=1))
    assert len(run.records) == 3  # one per round for the one endpoint: an empty list would pass the loop below
    assert [rec.round for rec in run.records] == [0, 1, 2]
    for rec in run.records:
        assert set(rec.candidates) == {"pico", "nano"}
        assert (rec.candidate_map, rec.candidate_bytes) in rec.candidates.values()  # the deployed student's
