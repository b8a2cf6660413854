"""Many simulated rounds of the loop, driven by a measured surface: each policy at each bandwidth.

Endpoints drift to a new domain every ``rounds_per_domain`` rounds (staggered, so a shared
link has someone to favour). Policies see only noisy measurements, as in the real loop; the
score is the true deployed mAP averaged over rounds and endpoints. Noise depends on the
seed, bandwidth, round and endpoint only, so every policy meets the same luck.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from edge.scheduler.lookahead import Situation
from edge.scheduler.policies import make_policy
from edge.scheduler.policy import Budget, EndpointState, PushOption, RoundRecord
from edge.scheduler.surfaces import ScenarioSurface, TrueSurface

log = logging.getLogger(__name__)

# (endpoint state, planned push, the edge's fresh candidates: student -> (mAP, bytes), and its evaluated deltas:
# delta name -> (mAP, bytes)) -> the push to make
Repick = Callable[[EndpointState, PushOption, Mapping[str, tuple[float, int]], Mapping[str, tuple[float, int]]],
                  PushOption]


@dataclass(frozen=True)
class SimConfig:
    """The simulated loop: round length, link, endpoints, drift and measurement noise."""

    round_s: float = 60.0
    rounds: int = 30
    rounds_per_domain: int = 10
    endpoints: int = 2
    shared_link: bool = True  # one edge link for all endpoints; else each has the whole budget
    frames_per_round: int = 300  # frames an endpoint sees per round: the most it can upload
    map_noise: float = 0.01  # std of a measured mAP (finite held-out set)
    frame_size_jitter: float = 0.15  # log-normal spread of JPEG sizes
    push_size_jitter: float = 0.05  # deltas vary in size from round to round
    seed: int = 0


@dataclass
class PolicyRun:
    """One policy at one bandwidth: its score, the split it chose, and every round's record."""

    policy: str
    budget_bytes: int  # per endpoint and round (the shared link carries endpoints times this)
    mean_map: float  # true deployed mAP50-95, averaged over rounds and endpoints
    upload_bytes: int
    push_bytes: int
    planned_upload_bytes: int
    planned_push_bytes: int
    push_counts: dict[str, int] = field(default_factory=dict)
    records: list[RoundRecord] = field(default_factory=list)

    @property
    def data_share(self) -> float:
        """Spent data bytes over all spent bytes; 1.0 when nothing was spent."""
        total = self.upload_bytes + self.push_bytes
        return self.upload_bytes / total if total else 1.0


@dataclass
class _Endpoint:
    """The simulator's truth about one endpoint, and what has been measured of it."""

    surface: TrueSurface
    sit: Situation  # true values
    map_base_seen: float
    map_seen: float
    anchor_map_seen: float


def bandwidth_label_kbps(budget_bytes: int, round_s: float) -> float:
    """A per-endpoint round budget as a link rate in kilobits per second."""
    return budget_bytes * 8 / 1000 / round_s


def simulate_policy(scenarios: Sequence[ScenarioSurface], policy_name: str, budget_bytes: int,
                    config: SimConfig = SimConfig(), stream: int = 0) -> PolicyRun:
    """Play ``config.rounds`` rounds with one policy; ``stream`` separates the noise of different bandwidths."""
    surfaces = [TrueSurface(s) for s in scenarios]
    ids = [f"sim-{i + 1}" for i in range(config.endpoints)]
    world: dict[str, _Endpoint] = {}
    policy = make_policy(policy_name, truth=lambda endpoint_id: (world[endpoint_id].sit,
                                                                world[endpoint_id].surface.after))
    offsets = [i * config.rounds_per_domain // config.endpoints for i in range(config.endpoints)]
    link_bytes = budget_bytes * config.endpoints if config.shared_link else budget_bytes
    budget = Budget(link_bytes, shared=config.shared_link)
    history: list[RoundRecord] = []
    map_sum = 0.0
    for r in range(config.rounds):
        for i, endpoint_id in enumerate(ids):
            episode, phase = divmod(r + offsets[i], config.rounds_per_domain)
            if phase == 0 or endpoint_id not in world:
                world[endpoint_id] = _drift(surfaces[(i + episode) % len(surfaces)], config,
                                            np.random.default_rng([config.seed, stream, r, i, 1]))
        states = [_state(endpoint_id, world[endpoint_id], config) for endpoint_id in ids]
        options = {e: world[e].surface.push_options(world[e].sit.student) for e in ids}
        allocation = policy.plan(budget, states, history, options)
        for i, (state, plan) in enumerate(zip(states, allocation.endpoints)):
            rng = np.random.default_rng([config.seed, stream, r, i, 2])
            share = plan.total_bytes if config.shared_link else budget_bytes
            history.append(_play_round(r, policy_name, plan.upload_bytes, plan.push, state, world[state.endpoint_id],
                                       share, config, rng, getattr(policy, "repick_push", None)))
            map_sum += float(world[state.endpoint_id].sit.map_deployed)
    pushes: dict[str, int] = {}
    for rec in history:
        pushes[rec.push] = pushes.get(rec.push, 0) + 1
    return PolicyRun(policy_name, budget_bytes, map_sum / (config.rounds * config.endpoints),
                     sum(r.spent_upload_bytes for r in history), sum(r.spent_push_bytes for r in history),
                     sum(r.planned_upload_bytes for r in history), sum(r.planned_push_bytes for r in history),
                     pushes, history)


def _drift(surface: TrueSurface, config: SimConfig, rng: np.random.Generator) -> _Endpoint:
    """A new domain begins: no data of it yet, the base student deployed at the base mAP."""
    student = surface.full_by_student[surface.scenario.base_student]
    sit = Situation(0.0, surface.base_map, surface.base_map, 0.0, surface.base_map, student.student,
                    float(student.bytes))
    seen = float(np.clip(surface.base_map + config.map_noise * rng.normal(), 0.0, 1.0))
    return _Endpoint(surface, sit, seen, seen, seen)


def _state(endpoint_id: str, e: _Endpoint, config: SimConfig) -> EndpointState:
    return EndpointState(endpoint_id, map_deployed=e.map_seen, map_base=e.map_base_seen,
                         uploaded_bytes=int(e.sit.x_bytes), deployed_student=e.sit.student,
                         deployed_model_bytes=int(e.sit.student_bytes), anchor_uploaded_bytes=int(e.sit.anchor_x_bytes),
                         anchor_map=e.anchor_map_seen, bytes_per_frame=e.surface.scenario.bytes_per_frame,
                         frames_per_round=config.frames_per_round)


def _play_round(r: int, policy: str, planned_upload: int, push: PushOption, state: EndpointState, e: _Endpoint,
                budget_bytes: int, config: SimConfig, rng: np.random.Generator, repick: Repick | None = None
                ) -> RoundRecord:
    """Upload whole frames within the plan, train on them, evaluate the candidates, push, measure; updates ``e``
    in place. ``repick`` (the policy's, if it has one) may change the push once the edge has evaluated what it
    trained, within the push bytes the plan reserved."""
    # all draws up front and in a fixed order, so every policy meets the same luck
    sizes = e.surface.scenario.bytes_per_frame * rng.lognormal(
        -config.frame_size_jitter**2 / 2, config.frame_size_jitter, size=config.frames_per_round)
    push_jitter, map_noise, _ = rng.normal(0.0, 1.0, size=3)
    candidate_noise = rng.normal(0.0, 1.0, size=len(e.surface.full_by_student))
    deltas = [o for o in e.surface.scenario.options if o.kind == "delta"]
    delta_noise = rng.normal(0.0, 1.0, size=len(deltas))  # drawn for every delta, pushable now or not
    frames = int(np.searchsorted(np.cumsum(sizes), planned_upload, side="right"))
    spent_upload = int(sizes[:frames].sum())
    # the edge trains every student it could push and evaluates each on its held-out frames (no link bytes):
    # what a full push of it would deploy now
    x_after = e.sit.x_bytes + spent_upload
    candidates = {}
    for (student, full), noise in zip(e.surface.full_by_student.items(), candidate_noise):
        value = float(e.surface.option_map(full.name, x_after)) + config.map_noise * noise
        candidates[student] = (float(np.clip(value, 0.0, 1.0)), full.bytes)
    # and every delta it could push now (onto the deployed student), applied to the deployed model
    offered = {o.name: o for o in e.surface.push_options(e.sit.student) if o.kind == "delta"}
    delta_candidates = {}
    for delta, noise in zip(deltas, delta_noise):
        if delta.name in offered:
            value = float(e.surface.after(e.sit, spent_upload, offered[delta.name])) + config.map_noise * noise
            delta_candidates[delta.name] = (float(np.clip(value, 0.0, 1.0)), offered[delta.name].bytes)
    planned_push = push
    if repick is not None:
        push = repick(state, push, candidates, delta_candidates)
        if push.bytes > planned_push.bytes:
            raise ValueError(f"repick chose {push.name!r}, larger than the {planned_push.bytes} push bytes planned")
    spent_push = push.bytes
    if push.kind == "delta":
        spent_push = max(1, int(round(push.bytes * (1 + config.push_size_jitter * push_jitter))))
    map_after = float(e.surface.after(e.sit, spent_upload, push))
    e.sit = e.sit.after(spent_upload, push, map_after)
    e.map_seen = float(np.clip(map_after + config.map_noise * map_noise, 0.0, 1.0))
    if push.kind == "full":
        e.anchor_map_seen = e.map_seen
    candidate_map, candidate_bytes = candidates[e.sit.student]
    return RoundRecord(
        round=r, endpoint_id=state.endpoint_id, policy=policy, budget_bytes=budget_bytes,
        planned_upload_bytes=planned_upload, spent_upload_bytes=spent_upload, planned_push_bytes=planned_push.bytes,
        spent_push_bytes=spent_push, frames_uploaded=frames, push=push.name, push_kind=push.kind,
        push_student=push.student, uploaded_bytes_before=state.uploaded_bytes, map_base=state.map_base,
        anchor_uploaded_bytes=state.anchor_uploaded_bytes, anchor_map=float(state.anchor_map),
        map_before=state.map_deployed, map_after=e.map_seen, candidate_map=candidate_map,
        candidate_bytes=candidate_bytes, candidates=candidates, delta_candidates=delta_candidates)


def budget_grid(scenarios: Sequence[ScenarioSurface], config: SimConfig, points: int = 9) -> list[int]:
    """Per-endpoint round budgets from starved (half the smallest push) to plentiful (every frame plus the
    largest push, twice over), log-spaced."""
    pushes = [o.bytes for s in scenarios for o in s.options if o.kind != "skip"]
    most_data = max(s.bytes_per_frame for s in scenarios) * config.frames_per_round
    low, high = 0.5 * min(pushes), 2.0 * (max(pushes) + most_data)
    return [int(b) for b in np.geomspace(low, high, points)]


def sweep(scenarios: Sequence[ScenarioSurface], policy_names: Sequence[str], budgets: Sequence[int],
          config: SimConfig = SimConfig(), progress: Callable[[str, int], None] | None = None
          ) -> dict[int, dict[str, PolicyRun]]:
    """Every policy at every per-endpoint budget; the noise stream is shared by the policies of a budget."""
    out: dict[int, dict[str, PolicyRun]] = {}
    for stream, budget_bytes in enumerate(budgets):
        out[budget_bytes] = {}
        for name in policy_names:
            out[budget_bytes][name] = simulate_policy(scenarios, name, budget_bytes, config, stream)
            if progress:
                progress(name, budget_bytes)
    return out


__all__ = ["PolicyRun", "SimConfig", "bandwidth_label_kbps", "budget_grid", "simulate_policy", "sweep"]
