"""The response model: deployed mAP as a saturating function of uploaded data and of the pushed model.

Data uploaded so far (``X`` bytes of the current domain) lets the edge train a model worth
``map_base + gain * h(X)``, ``h(X) = 1 - (1 + (X / data_scale) ** hill) ** -shape`` (learning curves follow
power laws; ``hill > 1`` lets the curve wait for enough data first, a threshold measured students show); the
endpoint only sees it through a push:

* skip: the deployed mAP stays;
* full student of ``M`` bytes: ``map_base + carry(M) * gain * h(X)`` — a bigger student holds more of it;
* delta of ``M`` bytes: the head of the model deployed by the last full push (at ``X_a``, mAP ``m_a``)
  retuned on all data, ``m_a + carry(M) * gain * (h(X) - h(X_a))``, between the deployed mAP and
  what a full push of that student would give,

with ``carry(M) = 1 - exp(-M / scale)``, one scale for full models and one for deltas, as the prior of each
option's carry. Measured students need not follow it (a bigger student can adapt worse than a small one), so
every option the history has seen (a full push by its student, a delta by its name) gets its own carry:
``logit carry = logit(1 - exp(-M / scale)) + u``, with ``u`` shrunk toward 0 (few observations: the curve
speaks; many: the option's own record). The uncertainty of what each option delivers (a Laplace approximation
of the posterior) lets the policy be optimistic about options it has hardly seen, so it tries them.
Fitting is a maximum a posteriori least squares (Levenberg-Marquardt in numpy) with a weak prior.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

import numpy as np

from edge.scheduler.lookahead import Situation
from edge.scheduler.policy import EndpointState, PushOption, RoundRecord

log = logging.getLogger(__name__)

_KIND_CODE = {"skip": 0, "delta": 1, "full": 2}


@dataclass(frozen=True)
class ResponseParams:
    """Curve parameters; scales are in bytes, ``gain`` in mAP50-95 points (0..1)."""

    gain: float = 0.25
    data_scale_bytes: float = 1.2e6
    full_scale_bytes: float = 5e5
    delta_scale_bytes: float = 5e4
    data_shape: float = 1.0  # power-law tail of the data curve: small is slow (log-like), large is exponential
    data_hill: float = 1.0  # onset of the data curve: 1 rises at once, above 1 waits for data (a threshold)

    def as_vector(self) -> np.ndarray:
        return np.array([self.gain, np.log(self.data_scale_bytes), np.log(self.full_scale_bytes),
                         np.log(self.delta_scale_bytes), np.log(self.data_shape), np.log(self.data_hill)])

    @classmethod
    def from_vector(cls, v: np.ndarray) -> "ResponseParams":
        return cls(float(v[0]), *(float(np.exp(x)) for x in v[1:]))


@dataclass(frozen=True)
class ResponseFit:
    """Fitted parameters and how well they explain the observations.

    ``carry`` holds the fitted carry of every option the history saw (by ``option_key``), ``gain_sd`` the
    posterior standard deviation of what it delivers (``gain * carry``, in mAP points) and ``counts`` how
    many observations it had.
    """

    params: ResponseParams
    observations: int
    rmse: float  # of the observations, in mAP points
    carry: Mapping[str, float] = field(default_factory=dict)
    gain_sd: Mapping[str, float] = field(default_factory=dict)
    counts: Mapping[str, int] = field(default_factory=dict)

    def option_carry(self, option: PushOption, optimism: float = 0.0) -> float | None:
        """The option's own fitted carry; one never tried ``optimism`` posterior sds above it (optimism under
        uncertainty: it gets tried when the budget allows); None when the fit has none."""
        key = option_key(option.kind, option.name, option.student)
        if key not in self.carry:
            return None
        untried = self.counts.get(key, 0) == 0
        bonus = optimism * self.gain_sd.get(key, 0.0) / max(self.params.gain, 1e-6) if untried else 0.0
        return float(self.carry[key] + bonus)


def option_key(kind: str, name: str, student: str) -> str:
    """Who an observation speaks for: a full push by the student it deploys, a delta by its name."""
    return f"full:{student}" if kind == "full" else f"delta:{name}"


def _logit(p):
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p) - np.log1p(-p)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def data_response(params: ResponseParams, x_bytes) -> np.ndarray:
    """Share of the data gain reached after ``x_bytes`` of the current domain: ``1 - (1 + (X/s)^k)^-shape``
    (a Burr XII curve), a saturating power law for ``k = data_hill = 1``, an S-curve (a data threshold below
    which training barely helps) for ``k > 1``."""
    x = np.maximum(np.asarray(x_bytes, dtype=np.float64), 0.0)
    return 1.0 - (1.0 + (x / params.data_scale_bytes) ** params.data_hill) ** -params.data_shape


def curve_carry(params: ResponseParams, kind: str, push_bytes):
    """The carry the size curve gives a push of ``push_bytes``: the prior of every option's own carry."""
    scale = params.full_scale_bytes if kind == "full" else params.delta_scale_bytes
    return 1.0 - np.exp(-np.asarray(push_bytes, dtype=np.float64) / scale)


def push_carry(params: ResponseParams, option: PushOption) -> float:
    """Share of the edge's improvement a push delivers (0 for skip)."""
    if option.kind == "skip":
        return 0.0
    if option.carry is not None:
        return float(option.carry)
    return float(curve_carry(params, option.kind, option.bytes))


def _full_map(params: ResponseParams, map_base, x, carry):
    return map_base + carry * params.gain * data_response(params, x)


def _delta_map(params: ResponseParams, sit: Situation, x, carry, student_carry=None):
    """The deployed model's head retuned on all data: what the anchor model gains from data since it."""
    retuned = sit.anchor_map + carry * params.gain * (data_response(params, x) - data_response(params,
                                                                                               sit.anchor_x_bytes))
    if student_carry is None:
        student_carry = np.where(np.asarray(sit.student_bytes) > 0,
                                 curve_carry(params, "full", sit.student_bytes), 1.0)
    ceiling = np.maximum(sit.map_deployed, _full_map(params, sit.map_base, x, student_carry))
    return np.clip(retuned, sit.map_deployed, ceiling)


def predict_map(params: ResponseParams, sit: Situation, upload_bytes, option: PushOption,
                student_carry: Mapping[str, float] | None = None) -> np.ndarray:
    """Deployed mAP50-95 after uploading ``upload_bytes`` (scalar or array) and pushing ``option``.

    ``student_carry`` (student name -> carry of its full push) caps a delta at what its student's full push
    would give; students it does not name, by the size curve.
    """
    x = sit.x_bytes + np.asarray(upload_bytes, dtype=np.float64)
    if option.kind == "skip":
        return np.broadcast_to(np.asarray(sit.map_deployed, dtype=np.float64), np.shape(x)).copy()
    carry = push_carry(params, option)
    if option.kind == "full":
        full = _full_map(params, sit.map_base, x, carry)
        # the deployed student retrained on more of the same data is not expected to be worse
        return np.maximum(full, sit.map_deployed) if option.student == sit.student else full
    known = student_carry.get(sit.student) if student_carry and isinstance(sit.student, str) else None
    return _delta_map(params, sit, x, carry, known)


_COLUMNS = ("base", "before", "x", "is_full", "bytes", "anchor_x", "anchor_map", "student_bytes", "observed", "key",
            "student_key")
_N_CURVE = 6  # curve parameters ahead of the per-option carry offsets in the fitted vector
CARRY_PSEUDO_COUNT = 10.0  # observations after which an option's own record and the curves speak alike for its carry
CANDIDATE_MATCH = 0.1  # a candidate of unknown student is the full option within 10% of its size, if one is


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
    """Columns of what the history says: pushes seen at the endpoints, and candidates (full students and deltas on
    the deployed model) evaluated at the edge;
    and the option keys the ``key`` column indexes (-1: no option of its own), ``options`` first."""
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
    offsets = np.append(v[_N_CURVE:], 0.0)  # index -1: the curve alone
    return offsets[index.astype(int)]


def _predict_columns(v: np.ndarray, obs: dict[str, np.ndarray]) -> np.ndarray:
    params = ResponseParams.from_vector(v[:_N_CURVE])
    is_full = obs["is_full"] > 0
    curve = np.where(is_full, curve_carry(params, "full", obs["bytes"]), curve_carry(params, "delta", obs["bytes"]))
    carry = _sigmoid(_logit(curve) + _offset(v, obs["key"]))
    student_carry = np.where(obs["student_bytes"] > 0,
                             _sigmoid(_logit(curve_carry(params, "full", obs["student_bytes"]))
                                      + _offset(v, obs["student_key"])), 1.0)
    sit = Situation(obs["x"], obs["before"], obs["base"], obs["anchor_x"], obs["anchor_map"], "", obs["student_bytes"])
    return np.where(is_full, _full_map(params, obs["base"], obs["x"], carry),
                    _delta_map(params, sit, obs["x"], carry, student_carry))


def _residuals(v, obs, prior_v, prior_sigma, obs_sigma) -> np.ndarray:
    return np.concatenate([(_predict_columns(v, obs) - obs["observed"]) / obs_sigma, (v - prior_v) / prior_sigma])


def _levenberg_marquardt(fun, v0: np.ndarray, max_iter: int = 100) -> tuple[np.ndarray, float]:
    """Minimize ``sum(fun(v)**2)`` from ``v0``; a finite-difference Jacobian is plenty for a few parameters."""
    v, r = v0.copy(), fun(v0)
    cost, lam = float(r @ r), 1e-2
    for _ in range(max_iter):
        jac = _jacobian(fun, v, r)
        jtj, jtr = jac.T @ jac, jac.T @ r
        improved = False
        while lam < 1e10:
            delta = np.linalg.solve(jtj + lam * np.diag(np.diag(jtj) + 1e-12), -jtr)
            r_new = fun(v + delta)
            cost_new = float(r_new @ r_new)
            if cost_new < cost:
                improved = cost - cost_new > 1e-12 * max(1.0, cost)
                v, r, cost, lam = v + delta, r_new, cost_new, max(lam / 3, 1e-9)
                break
            lam *= 4
        if not improved:
            break
    return v, cost


def _jacobian(fun, v: np.ndarray, r: np.ndarray | None = None) -> np.ndarray:
    r = fun(v) if r is None else r
    jac = np.empty((len(r), len(v)))
    for j in range(len(v)):
        step = 1e-6 * max(1.0, abs(v[j]))
        dv = v.copy()
        dv[j] += step
        jac[:, j] = (fun(dv) - r) / step
    return jac


def fit_response(records: Sequence[RoundRecord], prior: ResponseParams, obs_sigma: float = 0.01,
                 gain_sigma: float = 0.25, log_scale_sigma: float = 1.5, shape_log_sigma: float = 1.0,
                 hill_log_sigma: float = 1.0,
                 options: Sequence[PushOption] = (), carry_logit_sigma: float = 1.5,
                 per_option: bool = True, carry_pseudo_count: float = CARRY_PSEUDO_COUNT) -> ResponseFit:
    """The parameters that best explain ``records`` (with ``prior`` as weak pseudo-observations).

    Every option seen in ``records`` gets its own carry, its logit offset from the size curve's with prior
    ``N(0, carry_logit_sigma)``; ``options`` (what can be pushed now) name the students' full sizes, so a
    candidate of unrecorded student is matched by size, and the sizes the per-option carries are reported at.
    An option's offset is credited with its own record only as that record grows: its prior sd is
    ``carry_logit_sigma * sqrt(n / (n + carry_pseudo_count))`` after ``n`` observations (a few noisy ones, early
    in a domain, are mostly explained by the shared curves, which every option's observations inform; an option
    never observed keeps the full spread, so the optimism about it stays).
    ``per_option=False`` fits the size curves alone (then their scales are identified by the history; with
    per-option carries only the options' own carries are, the scales speak for options never seen).
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

    def fun(v):
        return _residuals(v, obs, prior_v, prior_sigma, obs_sigma)

    # A few starts along the data scale, where the cost has its local minima.
    best_v, best_cost = prior_v, float("inf")
    for shift in (0.0, -2.0, 2.0):
        start = prior_v.copy()
        start[1] += shift
        v, cost = _levenberg_marquardt(fun, start)
        if cost < best_cost:
            best_v, best_cost = v, cost
    residual = _predict_columns(best_v, obs) - obs["observed"]
    params = ResponseParams.from_vector(best_v[:_N_CURVE])
    carry, gain_sd, counts = _option_carries(fun, best_v, obs, keys, options)
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


def _option_carries(fun, v: np.ndarray, obs: dict[str, np.ndarray], keys: Sequence[str],
                    options: Sequence[PushOption]) -> tuple[dict[str, float], dict[str, float], dict[str, int]]:
    """Each option's carry at its size, and the posterior sd of ``gain * carry`` (Laplace approximation): an
    option never seen has the curve's carry and the prior's spread."""
    if not keys:
        return {}, {}, {}
    sizes = {option_key(o.kind, o.name, o.student): o.bytes for o in options if o.kind != "skip"}
    jac = _jacobian(fun, v)
    try:
        cov = np.linalg.pinv(jac.T @ jac)  # residuals are in sigmas, prior rows included: the inverse Hessian
    except np.linalg.LinAlgError:
        cov = None
    gain = max(ResponseParams.from_vector(v[:_N_CURVE]).gain, 1e-6)
    carry, gain_sd, counts = {}, {}, {}
    for i, key in enumerate(keys):
        kind = "full" if key.startswith("full:") else "delta"
        mask = (obs["key"] == i) & ((obs["is_full"] > 0) == (kind == "full"))
        counts[key] = int(mask.sum())
        size = sizes.get(key, float(np.mean(obs["bytes"][mask])) if mask.any() else 0.0)

        def delivered(w, i=i, kind=kind, size=size):
            p = ResponseParams.from_vector(w[:_N_CURVE])
            return p.gain * _sigmoid(_logit(curve_carry(p, kind, size)) + w[_N_CURVE + i])

        value = float(delivered(v))
        carry[key] = value / gain
        if cov is not None:
            grad = np.empty(len(v))
            for j in range(len(v)):
                step = 1e-6 * max(1.0, abs(v[j]))
                dv = v.copy()
                dv[j] += step
                grad[j] = (float(delivered(dv)) - value) / step
            gain_sd[key] = float(np.sqrt(max(0.0, grad @ cov @ grad)))
    return carry, gain_sd, counts


def default_prior(states: Sequence[EndpointState], options: Sequence[PushOption]) -> ResponseParams:
    """Before any history: data saturates over ~100 frames; the largest full push carries ~86% of the gain and
    the largest delta, which retunes only part of a model, half."""
    bytes_per_frame = float(np.mean([s.bytes_per_frame for s in states])) if states else 12_000.0
    fulls = [o.bytes for o in options if o.kind == "full"]
    deltas = [o.bytes for o in options if o.kind == "delta"]
    prior = ResponseParams(gain=0.25, data_scale_bytes=100 * bytes_per_frame)
    if fulls:
        prior = replace(prior, full_scale_bytes=max(fulls) / 2)
    if deltas:
        prior = replace(prior, delta_scale_bytes=max(deltas) / np.log(2))
    return prior


__all__ = ["ResponseFit", "ResponseParams", "candidate_student", "curve_carry", "data_response", "default_prior",
           "fit_response", "option_key", "predict_map", "push_carry"]
