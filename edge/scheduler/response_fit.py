"""Fit the response curves, and every option's own carry, to the rounds seen (model: docs/scheduler.md)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from edge.scheduler.least_squares import posterior_covariance, posterior_sd, solve
from edge.scheduler.lookahead import Situation
from edge.scheduler.policy import PushOption, RoundRecord
from edge.scheduler.response_curve import (N_CURVE, ResponseParams, curve_carry, delta_map, full_map, logit,
                                           option_key, sigmoid)

log = logging.getLogger(__name__)

_COLUMNS = ("base", "before", "x", "is_full", "bytes", "anchor_x", "anchor_map", "student_bytes", "observed", "key",
            "student_key")
CARRY_PSEUDO_COUNT = 10.0  # observations after which an option's own record and the curves speak alike for its carry
CANDIDATE_MATCH = 0.1  # a candidate of unknown student is the full option within 10% of its size, if one is
DATA_SCALE_STARTS = (0.0, -2.0, 2.0)  # log shifts of the prior's data scale to start from: the cost's local minima


@dataclass(frozen=True)
class ResponseFit:
    """Fitted parameters and how well they explain the observations.

    ``carry``: each seen option's fitted carry (by ``option_key``); ``gain_sd``: posterior sd of what it delivers
    (``gain * carry``, mAP points); ``counts``: its observations.
    """

    params: ResponseParams
    observations: int
    rmse: float  # of the observations, in mAP points
    carry: Mapping[str, float] = field(default_factory=dict)
    gain_sd: Mapping[str, float] = field(default_factory=dict)
    counts: Mapping[str, int] = field(default_factory=dict)

    def option_carry(self, option: PushOption, optimism: float = 0.0) -> float | None:
        """The option's own fitted carry; one never tried ``optimism`` posterior sds above it (so it gets tried
        when the budget allows); None when the fit has none."""
        key = option_key(option.kind, option.name, option.student)
        if key not in self.carry:
            return None
        untried = self.counts.get(key, 0) == 0
        bonus = optimism * self.gain_sd.get(key, 0.0) / max(self.params.gain, 1e-6) if untried else 0.0
        return float(self.carry[key] + bonus)


def candidate_student(record: RoundRecord, fulls: Mapping[str, float]) -> str:
    """The student the edge's candidate of ``record`` is: the full student of its size (``fulls``: student ->
    full push bytes), else the one a delta pushed retunes; "" when neither says."""
    if fulls and record.candidate_bytes:
        student, size = min(fulls.items(), key=lambda kv: abs(kv[1] - record.candidate_bytes))
        if abs(size - record.candidate_bytes) <= CANDIDATE_MATCH * size:
            return student
    return record.push_student if record.push_kind == "delta" else ""


def _full_sizes(records: Sequence[RoundRecord], options: Sequence[PushOption]) -> dict[str, float]:
    """Each student's full push size: from the options on offer, else from the full pushes recorded."""
    sizes: dict[str, list[int]] = {}
    for r in records:
        if r.push_kind == "full" and r.push_student and r.spent_push_bytes > 0:
            sizes.setdefault(r.push_student, []).append(r.spent_push_bytes)
    out = {student: float(np.mean(b)) for student, b in sizes.items()}
    out.update({o.student: float(o.bytes) for o in options if o.kind == "full" and o.student})
    return out


def _observations(records: Sequence[RoundRecord], fulls: Mapping[str, float], options: Sequence[PushOption] = ()
                  ) -> tuple[dict[str, np.ndarray], list[str]]:
    """Columns of what the history says (pushes seen at the endpoints; full students and deltas evaluated at the
    edge), and the option keys the ``key`` column indexes (-1: no option of its own), ``options`` first."""
    rows: list[tuple] = []
    keys = {option_key(o.kind, o.name, o.student): None for o in options if o.kind != "skip"}
    keys = {key: i for i, key in enumerate(keys)}

    def index(key: str) -> int:
        return keys.setdefault(key, len(keys))

    # the student each delta retunes (it can only be pushed onto that student): from the options, else the history
    delta_students = {r.push: r.push_student for r in records if r.push_kind == "delta" and r.push_student}
    delta_students.update({o.name: o.student for o in options if o.kind == "delta" and o.student})
    for r in records:
        x_after = r.uploaded_bytes_before + r.spent_upload_bytes
        anchor = (r.anchor_uploaded_bytes, r.anchor_map)
        student = candidate_student(r, fulls)
        student_key = index(option_key("full", "", student)) if student else -1
        if r.push_kind != "skip" and r.spent_push_bytes > 0:
            key = index(option_key(r.push_kind, r.push, r.push_student))
            rows.append((r.map_base, r.map_before, x_after, r.push_kind == "full", r.spent_push_bytes, *anchor,
                         r.candidate_bytes or 0, r.map_after, key, student_key))
        if r.candidate_map is not None and r.candidate_bytes and not (student and student in r.candidates):
            rows.append((r.map_base, r.map_before, x_after, True, r.candidate_bytes, *anchor, r.candidate_bytes,
                         r.candidate_map, student_key, student_key))
        for name, (value, size) in r.candidates.items():  # every full candidate the edge evaluated
            if size:
                key = index(option_key("full", "", name))
                rows.append((r.map_base, r.map_before, x_after, True, size, *anchor, size, value, key, key))
        for name, (value, size) in r.delta_candidates.items():  # every delta the edge evaluated on the deployed model
            if size:
                retuned = delta_students.get(name, "")
                retuned_bytes = fulls.get(retuned, 0.0) if retuned else 0.0
                retuned_key = index(option_key("full", "", retuned)) if retuned_bytes else -1
                rows.append((r.map_base, r.map_before, x_after, False, size, *anchor, retuned_bytes, value,
                             index(option_key("delta", name, retuned)), retuned_key))
    table = np.asarray(rows, dtype=np.float64).reshape(-1, len(_COLUMNS))
    return {name: table[:, i] for i, name in enumerate(_COLUMNS)}, list(keys)


def _offset(v: np.ndarray, index: np.ndarray) -> np.ndarray:
    offsets = np.append(v[N_CURVE:], 0.0)  # index -1: the curve alone
    return offsets[index.astype(int)]


def _predict_columns(v: np.ndarray, obs: dict[str, np.ndarray]) -> np.ndarray:
    params = ResponseParams.from_vector(v[:N_CURVE])
    is_full = obs["is_full"] > 0
    curve = np.where(is_full, curve_carry(params, "full", obs["bytes"]), curve_carry(params, "delta", obs["bytes"]))
    carry = sigmoid(logit(curve) + _offset(v, obs["key"]))
    student_carry = np.where(obs["student_bytes"] > 0,
                             sigmoid(logit(curve_carry(params, "full", obs["student_bytes"]))
                                     + _offset(v, obs["student_key"])), 1.0)
    sit = Situation(obs["x"], obs["before"], obs["base"], obs["anchor_x"], obs["anchor_map"], "", obs["student_bytes"])
    return np.where(is_full, full_map(params, obs["base"], obs["x"], carry),
                    delta_map(params, sit, obs["x"], carry, student_carry))


def fit_response(records: Sequence[RoundRecord], prior: ResponseParams, obs_sigma: float = 0.01,
                 gain_sigma: float = 0.25, log_scale_sigma: float = 1.5, shape_log_sigma: float = 1.0,
                 hill_log_sigma: float = 1.0,
                 options: Sequence[PushOption] = (), carry_logit_sigma: float = 1.5,
                 per_option: bool = True, carry_pseudo_count: float = CARRY_PSEUDO_COUNT) -> ResponseFit:
    """The maximum a posteriori parameters for ``records``, with ``prior`` as weak pseudo-observations.

    ``options`` name the students' full sizes and the sizes carries are reported at; ``per_option=False`` fits the
    size curves alone. How each option's carry is shrunk toward the curves: docs/scheduler.md.
    """
    obs, keys = _observations(records, _full_sizes(records, options), options)
    if not per_option:
        obs["key"][:], obs["student_key"][:], keys = -1, -1, []
    if len(obs["observed"]) == 0:
        return ResponseFit(prior, 0, 0.0)
    prior_v = np.concatenate([prior.as_vector(), np.zeros(len(keys))])
    prior_sigma = np.concatenate([[gain_sigma, log_scale_sigma, log_scale_sigma, log_scale_sigma, shape_log_sigma,
                                   hill_log_sigma],
                                  carry_logit_sigma * _offset_spread(obs["key"], len(keys), carry_pseudo_count)])

    def residuals(v: np.ndarray) -> np.ndarray:
        return np.concatenate([(_predict_columns(v, obs) - obs["observed"]) / obs_sigma, (v - prior_v) / prior_sigma])

    starts = [prior_v + np.eye(len(prior_v))[1] * shift for shift in DATA_SCALE_STARTS]
    best = solve(residuals, starts, prior_v, prior_sigma)
    residual = _predict_columns(best.v, obs) - obs["observed"]
    params = ResponseParams.from_vector(best.v[:N_CURVE])
    carry, gain_sd, counts = _option_carries(best.v, best.jac, obs, keys, options)
    fit = ResponseFit(params, len(residual), float(np.sqrt(np.mean(residual**2))), carry, gain_sd, counts)
    log.debug("response fit on %d observations: %s, carries %s (rmse %.4f)", fit.observations, fit.params,
              {k: round(c, 3) for k, c in carry.items()}, fit.rmse)
    return fit


def _offset_spread(key: np.ndarray, count: int, pseudo_count: float) -> np.ndarray:
    """Each option's share of ``carry_logit_sigma``: ``sqrt(n / (n + pseudo_count))`` after ``n`` observations of
    it, 1 for one never observed (nothing to shrink; its spread is the prior's uncertainty about it)."""
    n = np.array([np.sum(key == i) for i in range(count)], dtype=np.float64)
    if pseudo_count <= 0:
        return np.ones(count)
    return np.where(n > 0, np.sqrt(n / (n + pseudo_count)), 1.0)


def _option_carries(v: np.ndarray, jac: np.ndarray, obs: dict[str, np.ndarray], keys: Sequence[str],
                    options: Sequence[PushOption]) -> tuple[dict[str, float], dict[str, float], dict[str, int]]:
    """Each option's carry at its size, and the posterior sd of ``gain * carry`` (Laplace approximation): an
    option never seen has the curve's carry and the prior's spread."""
    if not keys:
        return {}, {}, {}
    sizes = {option_key(o.kind, o.name, o.student): o.bytes for o in options if o.kind != "skip"}
    try:
        cov = posterior_covariance(jac)
    except np.linalg.LinAlgError:
        cov = None
    gain = max(ResponseParams.from_vector(v[:N_CURVE]).gain, 1e-6)
    carry, gain_sd, counts = {}, {}, {}
    for i, key in enumerate(keys):
        kind = "full" if key.startswith("full:") else "delta"
        mask = (obs["key"] == i) & ((obs["is_full"] > 0) == (kind == "full"))
        counts[key] = int(mask.sum())
        size = sizes.get(key, float(np.mean(obs["bytes"][mask])) if mask.any() else 0.0)

        def delivered(w, i=i, kind=kind, size=size):
            p = ResponseParams.from_vector(w[:N_CURVE])
            return float(p.gain * sigmoid(logit(curve_carry(p, kind, size)) + w[N_CURVE + i]))

        carry[key] = delivered(v) / gain
        if cov is not None:
            gain_sd[key] = posterior_sd(delivered, v, cov)
    return carry, gain_sd, counts


__all__ = ["CANDIDATE_MATCH", "CARRY_PSEUDO_COUNT", "ResponseFit", "candidate_student", "fit_response"]
