"""The push options a round offers its scheduler: skip, the dense or sparse student, at what each last cost."""

from __future__ import annotations

from typing import Mapping

from edge.learner.setup import STUDENT_NAME
from edge.learning_config import LearningConfig
from edge.registry import ModelRegistry
from edge.scheduler.policy import SKIP, PushOption
from edge.scheduler.sparse_options import sparse_name, sparse_push_bytes
from endpoint.wire.manifest import Manifest


def sparse_option_name(learning: LearningConfig) -> str | None:
    """``sparse-<pct>`` when rounds may train a fraction of the student (INT8 only), else None."""
    fraction = learning.sparse_fraction
    return None if fraction is None or learning.student_precision != "int8" else sparse_name(100 * fraction)


def trained_fraction(registry: ModelRegistry, version: str) -> float:
    """The share of the student a registered version retrained (its ``sparse_fraction`` metric; 1.0: dense)."""
    return registry.manifest(STUDENT_NAME, version).metrics.get("sparse_fraction", 1.0)


def push_option_for(fraction: float) -> str:
    """The push option a version trained on ``fraction`` of the student is planned as."""
    return "full" if fraction >= 1.0 else sparse_name(100 * fraction)


def push_options(latest: Manifest | None, learning: LearningConfig,
                 measured_bytes: Mapping[str, int]) -> list[PushOption]:
    """Skip, the dense student, and (when configured) the sparse one, each planned at the bytes its kind last
    sent, or a first guess until one is sent.

    A dense student goes out as a delta when the endpoint holds its parent, so its last push is a better
    plan than the model's size. A sparse student's push is a delta of the deployed one.
    """
    if latest is None:
        return [SKIP, PushOption("full", 1, "full", STUDENT_NAME)]
    options = [SKIP, PushOption("full", measured_bytes.get("full") or latest.size_bytes, "full", STUDENT_NAME)]
    name = sparse_option_name(learning)
    if name is not None:
        # before the first sparse push: about one INT8 byte per weight, and the mask plus the changed values
        guess = min(latest.size_bytes, sparse_push_bytes(latest.size_bytes, learning.sparse_fraction, 0))
        options.append(PushOption(name, measured_bytes.get(name) or guess, "delta", STUDENT_NAME))
    return options


__all__ = ["push_option_for", "push_options", "sparse_option_name", "trained_fraction"]
