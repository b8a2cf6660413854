"""The response model's shape, and its fit recovering known curves from noisy rounds."""

from __future__ import annotations

import numpy as np
import pytest

from edge.scheduler.lookahead import Situation
from edge.scheduler.policy import SKIP, EndpointState, PushOption, RoundRecord
from edge.scheduler.response import ResponseParams, data_response, default_prior, fit_response, predict_map, push_carry
from tests.edge.scheduler.fakes import BYTES_PER_FRAME, DELTA, NANO, OPTIONS, PICO

TRUE = ResponseParams(gain=0.32, data_scale_bytes=120 * BYTES_PER_FRAME, full_scale_bytes=3.5e5,
                      delta_scale_bytes=6e4, data_shape=1.3)
SEEN_X = np.array([0.25e6, 0.5e6, 1e6, 2e6, 4e6, 7e6])  # data sizes the made-up history covers


def test_shape_of_the_model():
    fresh = Situation(0.0, 0.1, 0.1, 0.0, 0.1, "nano", float(NANO.bytes))
    uploads = np.array([0.0, 1e5, 1e6, 1e7])
    assert np.all(predict_map(TRUE, fresh, uploads, SKIP) == 0.1)  # no push, no change
    full = predict_map(TRUE, fresh, uploads, NANO)
    assert full[0] == pytest.approx(0.1) and np.all(np.diff(full) > 0)  # more data, better model
    assert np.all(predict_map(TRUE, fresh, uploads[1:], PICO) < full[1:])  # a smaller student carries less
    big_delta = PushOption("delta-all", 5_000_000, "delta", "nano")  # even a delta that carries everything
    assert np.all(predict_map(TRUE, fresh, uploads, big_delta) <= full + 1e-12)  # stays under its full student
    # a delta retunes the anchor model on the data since: none since, nothing gained
    adapted = Situation(2e6, 0.35, 0.1, 2e6, 0.35, "nano", float(NANO.bytes))
    assert predict_map(TRUE, adapted, np.array([0.0]), DELTA)[0] == pytest.approx(0.35)


def _history(params: ResponseParams, rounds: int, noise: float, seed: int) -> list[RoundRecord]:
    rng = np.random.default_rng(seed)
    records = []
    for r in range(rounds):
        base = rng.uniform(0.05, 0.15)
        x_before = float(rng.choice([0.0, rng.uniform(0, 4e6)]))
        anchor_x = float(rng.uniform(0, x_before))
        fresh = Situation(0.0, base, base, 0.0, base, "nano", float(NANO.bytes))
        anchor_map = float(predict_map(params, fresh, np.array([anchor_x]), NANO)[0])
        sit = Situation(x_before, anchor_map, base, anchor_x, anchor_map, "nano", float(NANO.bytes))
        push = [DELTA, PICO, NANO, PushOption("delta-neck", 200_000, "delta", "nano")][r % 4]
        upload = float(rng.uniform(0, 3e6))
        after = float(predict_map(params, sit, np.array([upload]), push)[0]) + rng.normal(0, noise)
        candidate = float(predict_map(params, sit, np.array([upload]), NANO)[0]) + rng.normal(0, noise)
        records.append(RoundRecord(
            round=r, endpoint_id="cam-1", policy="test", budget_bytes=0, planned_upload_bytes=int(upload),
            spent_upload_bytes=int(upload), planned_push_bytes=push.bytes, spent_push_bytes=push.bytes,
            frames_uploaded=int(upload / BYTES_PER_FRAME), push=push.name, push_kind=push.kind,
            push_student=push.student, uploaded_bytes_before=int(x_before), map_base=base,
            anchor_uploaded_bytes=int(anchor_x), anchor_map=anchor_map, map_before=anchor_map, map_after=after,
            candidate_map=candidate, candidate_bytes=NANO.bytes))
    return records


@pytest.mark.parametrize("seed", [0, 1])
def test_fit_recovers_known_curves_from_noisy_history(seed):
    prior = ResponseParams(gain=0.2, data_scale_bytes=4e5, full_scale_bytes=1e6, delta_scale_bytes=2e5)
    history = _history(TRUE, 120, noise=0.005, seed=seed)
    # with a carry of its own per option, what each option delivers over the data seen is identified (the size
    # curve is only its prior; the data curve's parameters trade off against each other, its values do not)
    fit = fit_response(history, prior, obs_sigma=0.005)
    assert fit.rmse < 0.0065
    for option in (DELTA, PICO, NANO):
        delivered = fit.params.gain * fit.option_carry(option) * data_response(fit.params, SEEN_X)
        true = TRUE.gain * push_carry(TRUE, option) * data_response(TRUE, SEEN_X)
        assert delivered == pytest.approx(true, abs=0.012), option.name
    # the size curves alone: their scales, and the data curve over the data seen, are identified
    fit = fit_response(history, prior, obs_sigma=0.005, per_option=False)
    assert fit.carry == {}
    p = fit.params
    assert fit.rmse < 0.0065
    assert p.gain * data_response(p, SEEN_X) == pytest.approx(TRUE.gain * data_response(TRUE, SEEN_X), abs=0.01)
    assert p.full_scale_bytes == pytest.approx(TRUE.full_scale_bytes, rel=0.2)
    assert p.delta_scale_bytes == pytest.approx(TRUE.delta_scale_bytes, rel=0.2)


def test_without_history_the_prior_stands():
    states = [EndpointState("cam-1", 0.1, 0.1, bytes_per_frame=BYTES_PER_FRAME)]
    prior = default_prior(states, OPTIONS)
    assert prior.data_scale_bytes == pytest.approx(100 * BYTES_PER_FRAME)
    assert fit_response([], prior).params == prior
