"""The response curves: deployed mAP after uploading data and pushing an option (derivation: docs/scheduler.md)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping, Sequence

import numpy as np

from edge.scheduler.lookahead import Situation
from edge.scheduler.policy import EndpointState, PushOption

N_CURVE = 6  # entries of ResponseParams.as_vector, ahead of the per-option carry offsets in a fitted vector


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
        # scales and exponents are fitted in logs: they stay positive and their priors are relative
        return np.array([self.gain, np.log(self.data_scale_bytes), np.log(self.full_scale_bytes),
                         np.log(self.delta_scale_bytes), np.log(self.data_shape), np.log(self.data_hill)])

    @classmethod
    def from_vector(cls, v: np.ndarray) -> "ResponseParams":
        return cls(float(v[0]), *(float(np.exp(x)) for x in v[1:N_CURVE]))


def option_key(kind: str, name: str, student: str) -> str:
    """Who an observation speaks for: a full push by the student it deploys, a delta by its name."""
    return f"full:{student}" if kind == "full" else f"delta:{name}"


def logit(p):
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p) - np.log1p(-p)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def data_response(params: ResponseParams, x_bytes) -> np.ndarray:
    """Share of the data gain reached after ``x_bytes`` of the current domain: ``1 - (1 + (X/s)^k)^-shape``."""
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


def full_map(params: ResponseParams, map_base, x, carry):
    """A full student trained on ``x`` bytes: the base plus its carry of the data gain."""
    return map_base + carry * params.gain * data_response(params, x)


def delta_map(params: ResponseParams, sit: Situation, x, carry, student_carry=None):
    """The deployed model's head retuned on all data: what the anchor model gains from data since it."""
    retuned = sit.anchor_map + carry * params.gain * (data_response(params, x)
                                                      - data_response(params, sit.anchor_x_bytes))
    if student_carry is None:
        student_carry = np.where(np.asarray(sit.student_bytes) > 0,
                                 curve_carry(params, "full", sit.student_bytes), 1.0)
    ceiling = np.maximum(sit.map_deployed, full_map(params, sit.map_base, x, student_carry))
    return np.clip(retuned, sit.map_deployed, ceiling)


def predict_map(params: ResponseParams, sit: Situation, upload_bytes, option: PushOption,
                student_carry: Mapping[str, float] | None = None) -> np.ndarray:
    """Deployed mAP50-95 after uploading ``upload_bytes`` (scalar or array) and pushing ``option``.

    ``student_carry`` (student -> carry of its full push) caps a delta at its student's full push.
    """
    x = sit.x_bytes + np.asarray(upload_bytes, dtype=np.float64)
    if option.kind == "skip":
        return np.broadcast_to(np.asarray(sit.map_deployed, dtype=np.float64), np.shape(x)).copy()
    carry = push_carry(params, option)
    if option.kind == "full":
        full = full_map(params, sit.map_base, x, carry)
        # the deployed student retrained on more of the same data is not expected to be worse
        return np.maximum(full, sit.map_deployed) if option.student == sit.student else full
    known = student_carry.get(sit.student) if student_carry and isinstance(sit.student, str) else None
    return delta_map(params, sit, x, carry, known)


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


__all__ = ["N_CURVE", "ResponseParams", "curve_carry", "data_response", "default_prior", "delta_map", "full_map",
           "logit", "option_key", "predict_map", "push_carry", "sigmoid"]
