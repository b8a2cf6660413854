"""The push options a round offers its scheduler: skip, and this round's student at what its push last cost."""

from __future__ import annotations

from typing import Mapping

from edge.learner.setup import STUDENT_NAME
from edge.learning_config import LearningConfig
from edge.scheduler.policy import SKIP, PushOption
from edge.scheduler.sparse_options import sparse_name, sparse_push_bytes
from endpoint.wire.manifest import Manifest


def push_option_name(learning: LearningConfig) -> str:
    """``full`` for a dense student, ``sparse-<pct>`` when the round trains a fraction of it (INT8 only)."""
    fraction = learning.sparse_fraction
    return "full" if fraction is None or learning.student_precision != "int8" else sparse_name(100 * fraction)


def push_options(latest: Manifest | None, learning: LearningConfig,
                 measured_bytes: Mapping[str, int]) -> list[PushOption]:
    """Skip, and the round's push planned at the bytes its kind last sent (a first guess until one is sent).

    A dense student goes out as a delta when the endpoint holds its parent, so its last push is a better
    plan than the model's size. A sparse student's push is a delta of the deployed one.
    """
    if latest is None:
        return [SKIP, PushOption("full", 1, "full", STUDENT_NAME)]
    name = push_option_name(learning)
    measured = measured_bytes.get(name)
    if name == "full":
        return [SKIP, PushOption(name, measured or latest.size_bytes, "full", STUDENT_NAME)]
    # before the first sparse push: about one INT8 byte per weight, and the mask plus the changed values
    guess = min(latest.size_bytes, sparse_push_bytes(latest.size_bytes, learning.sparse_fraction, 0))
    return [SKIP, PushOption(name, measured or guess, "delta", STUDENT_NAME)]


__all__ = ["push_option_name", "push_options"]
