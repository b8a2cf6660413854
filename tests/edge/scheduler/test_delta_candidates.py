"""The edge evaluates every delta it could push (on the deployed model) as it does every full student: the fit takes
them as delta observations, so a delta never pushed is no longer planned on optimism alone, and the push is
re-picked among every evaluated option within the reserved bytes."""

from __future__ import annotations

import json

from edge.scheduler.adaptive import AdaptivePolicy
from edge.scheduler.policy import SKIP, Budget, EndpointState, PushOption, RoundRecord
from edge.scheduler.response import ResponseParams, fit_response
from edge.scheduler.simulate import SimConfig, simulate_policy
from tests.edge.scheduler.fakes import fake_scenario

FULL = PushOption("full-student", 680_000, "full", "student")
NECK = PushOption("delta-neck", 270_000, "delta", "student")
HEAD = PushOption("delta-head", 220_000, "delta", "student")
OPTIONS = [SKIP, HEAD, NECK, FULL]
FRAME = 12_000


def _record(r: int, frames: int, full_map: float, deltas: dict, x_before: int) -> RoundRecord:
    # the full student is pushed every round; the deltas were only evaluated at the edge
    return RoundRecord(
        round=r, endpoint_id="cam-1", policy="test", budget_bytes=0, planned_upload_bytes=frames * FRAME,
        spent_upload_bytes=frames * FRAME, planned_push_bytes=FULL.bytes, spent_push_bytes=FULL.bytes,
        frames_uploaded=frames, push=FULL.name, push_kind="full", push_student="student",
        uploaded_bytes_before=x_before, map_base=0.05, anchor_uploaded_bytes=0, anchor_map=0.05, map_before=0.05,
        map_after=full_map, candidate_map=full_map, candidate_bytes=FULL.bytes,
        candidates={"student": (full_map, FULL.bytes)}, delta_candidates=deltas)


def _history(with_deltas: bool) -> list[RoundRecord]:
    deltas = {"delta-neck": (0.06, NECK.bytes), "delta-head": (0.07, HEAD.bytes)} if with_deltas else {}
    return [_record(r, 50, 0.13, deltas, r * 50 * FRAME) for r in range(4)]


def test_delta_candidates_survive_json_and_old_records_load():
    rec = _history(True)[0]
    back = RoundRecord.from_dict(json.loads(json.dumps(rec.to_dict())))
    assert back == rec and back.delta_candidates["delta-neck"] == (0.06, NECK.bytes)
    old = rec.to_dict()
    del old["delta_candidates"]  # a record written before the field existed
    assert RoundRecord.from_dict(old).delta_candidates == {}


def test_evaluated_deltas_are_observations_so_optimism_does_not_fire_on_them():
    prior = ResponseParams(data_scale_bytes=100 * FRAME, full_scale_bytes=340_000, delta_scale_bytes=390_000)
    blind = fit_response(_history(False), prior, options=OPTIONS)
    seen = fit_response(_history(True), prior, options=OPTIONS)
    assert blind.counts["delta:delta-neck"] == 0 and seen.counts["delta:delta-neck"] == 4
    # never evaluated, the neck delta is planned optimistically; evaluated as poor, it is planned as poor
    assert seen.option_carry(NECK, optimism=1.0) < blind.option_carry(NECK, optimism=1.0) - 0.1
    assert seen.option_carry(NECK, optimism=1.0) < seen.option_carry(FULL, optimism=1.0)


def test_repick_swaps_a_planned_push_for_any_better_evaluated_option_that_fits():
    state = EndpointState("cam-1", map_deployed=0.05, map_base=0.05, deployed_student="student",
                          deployed_model_bytes=FULL.bytes, bytes_per_frame=FRAME, frames_per_round=300)
    policy = AdaptivePolicy()
    policy.plan(Budget(3_000_000), [state], [], OPTIONS)
    fulls = {"student": (0.13, FULL.bytes)}
    deltas = {"delta-neck": (0.06, NECK.bytes), "delta-head": (0.09, HEAD.bytes)}
    assert policy.repick_push(state, NECK, fulls, deltas).name == HEAD.name  # smaller and better
    assert policy.repick_push(state, HEAD, fulls, deltas).name == HEAD.name  # the full does not fit
    assert policy.repick_push(state, FULL, fulls, deltas).name == FULL.name  # the full is best
    assert policy.repick_push(state, FULL, {"student": (0.08, FULL.bytes)}, deltas).name == HEAD.name
    assert policy.repick_push(state, NECK, fulls).name == NECK.name  # no delta evaluated: nothing to compare
    assert policy.repick_push(state, SKIP, fulls, deltas) == SKIP


def test_simulated_rounds_record_the_deltas_pushable_onto_the_deployed_student():
    run = simulate_policy([fake_scenario()], "adaptive", 3_000_000, SimConfig(rounds=3, endpoints=1))
    for rec in run.records:
        assert set(rec.delta_candidates) <= {"delta-head"}
        for value, size in rec.delta_candidates.values():
            assert 0.0 <= value <= 1.0 and size == 60_000
    assert any(rec.delta_candidates for rec in run.records)  # nano, the delta's student, is deployed at first
