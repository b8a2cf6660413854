"""Which frames to upload: small strategies chosen by name, under a per-round byte cap."""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass
from typing import Callable, Sequence

log = logging.getLogger(__name__)

MAX_STRIDE_FRAMES = float(2**62)  # every_nth's stride at most: more frames than a camera will ever see


@dataclass(frozen=True)
class Candidate:
    """What a strategy sees of a frame: the student's confidences and the frame's index."""

    index: int
    confidences: Sequence[float]


@dataclass(frozen=True)
class SamplerParams:
    sample_rate: float = 1.0  # fraction of frames a strategy may take
    conf_threshold: float = 0.25  # the detector's operating threshold
    margin: float = 0.15  # "close to threshold" means within this of it
    low_conf: float = 0.5  # a frame whose best detection is below this is uncertain


Strategy = Callable[[Candidate, SamplerParams, random.Random], bool]


def uniform(c: Candidate, p: SamplerParams, rng: random.Random) -> bool:
    """Every frame with probability ``sample_rate``."""
    return rng.random() < p.sample_rate


def low_confidence(c: Candidate, p: SamplerParams, rng: random.Random) -> bool:
    """Frames the student is unsure about: nothing found, a weak best box, or a box near the threshold."""
    confs = list(c.confidences)
    uncertain = (not confs or max(confs) < p.low_conf
                 or any(abs(x - p.conf_threshold) <= p.margin for x in confs))
    return uncertain and rng.random() < p.sample_rate


def every_nth(c: Candidate, p: SamplerParams, rng: random.Random) -> bool:
    """A fixed stride of 1 / ``sample_rate`` frames, deterministic."""
    if p.sample_rate <= 0:
        return False
    # a tiny rate's stride overflows a float (1 / 5e-324 is inf): past any frame index, only frame 0 is taken
    stride = max(1, round(min(1 / p.sample_rate, MAX_STRIDE_FRAMES)))
    return c.index % stride == 0


STRATEGIES: dict[str, Strategy] = {
    "uniform": uniform,
    "low_confidence": low_confidence,
    "every_nth": every_nth,
}


def strategy(name: str) -> Strategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown sampler {name!r}; choose one of {sorted(STRATEGIES)}") from None


class Sampler:
    """A named strategy plus a cap in bytes per round (None = no cap); safe to share between threads."""

    def __init__(self, name: str = "uniform", params: SamplerParams = SamplerParams(),
                 round_budget_bytes: int | None = None, seed: int = 0):
        self.name, self._strategy = name, strategy(name)
        self.params = params
        self.round_budget_bytes = round_budget_bytes
        self.round_spent_bytes = 0
        self._rng = random.Random(seed)
        # the detector asks, the frame writer charges and a plan reconfigures, each on its own thread
        self._lock = threading.Lock()

    def configure(self, name: str, params: SamplerParams, round_budget_bytes: int | None) -> None:
        """Apply a new round's plan; the byte count starts over."""
        chosen = strategy(name)
        with self._lock:
            self.name, self._strategy = name, chosen
            self.params = params
            self.round_budget_bytes = round_budget_bytes
            self.round_spent_bytes = 0

    def wants(self, candidate: Candidate) -> bool:
        """Would the strategy take this frame (before its size is known)?"""
        with self._lock:
            if self.round_budget_bytes is not None and self.round_spent_bytes >= self.round_budget_bytes:
                return False
            return self._strategy(candidate, self.params, self._rng)

    def admit(self, size_bytes: int) -> bool:
        """Charge an encoded frame against the round's cap; False if it does not fit."""
        with self._lock:
            if self.round_budget_bytes is not None and self.round_spent_bytes + size_bytes > self.round_budget_bytes:
                return False
            self.round_spent_bytes += size_bytes
            return True
