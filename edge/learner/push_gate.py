"""A round's student never replaces the one an endpoint runs when it scores lower on that endpoint's held-out frames.

A round trained on few or badly pseudo-labelled frames can come out worse than its parent; pushing it would
spend the link to make the endpoint worse.
"""

from __future__ import annotations

import math

REGRESSION_TOLERANCE_MAP = 1e-9  # a candidate scoring the same is no regression


def regression(candidate: str, candidate_map50_95: float, deployed: str, deployed_map50_95: float,
               domain: str, runs: str = "which it runs") -> str | None:
    """Why ``candidate`` must not be pushed; None when it scores at least what ``deployed`` does, or is unscored."""
    if math.isnan(deployed_map50_95) or math.isnan(candidate_map50_95):
        return None
    if candidate_map50_95 >= deployed_map50_95 - REGRESSION_TOLERANCE_MAP:
        return None
    return (f"{candidate} scores {candidate_map50_95:.3f} mAP50-95 on its held-out {domain} frames, below the "
            f"{deployed_map50_95:.3f} of {deployed}, {runs}")
