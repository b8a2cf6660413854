"""Turn an ``Allocation`` into the ``plan`` messages the endpoints follow."""

from __future__ import annotations

from endpoint.wire.protocol import Plan

from edge.scheduler.policy import Allocation

MIN_RATE_BYTES_PER_S = 1.0  # the wire type wants a positive rate even when the budget is zero


def to_protocol_plans(allocation: Allocation, round: int, round_duration_s: float, domain: str = "",
                      frames: int = 0) -> list[Plan]:
    """One ``Plan`` per endpoint; the uplink is paced to spread its upload budget over the round."""
    if round_duration_s <= 0:
        raise ValueError("round_duration_s must be positive")
    return [Plan(endpoint_id=p.endpoint_id, round=round, upload_budget_bytes=p.upload_bytes,
                 upload_rate_bytes_per_s=max(MIN_RATE_BYTES_PER_S, p.upload_bytes / round_duration_s),
                 sampler=p.sampler, sample_rate=min(1.0, max(0.0, p.sample_rate)), domain=domain, frames=frames)
            for p in allocation.endpoints]


__all__ = ["to_protocol_plans"]
