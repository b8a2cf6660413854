"""Every core for ultralytics' CPU work: it keeps one core free, which on a 2-core edge is half the machine.

ultralytics sets torch to ``min(8, cores - 1)`` threads whenever it selects a device: one thread on a 2-core
edge. Measured there (the lab's teacher fine-tune on 130 dusk frames + replay, quiet machine): 46.9 s on one
thread, 32.2 s on two; the student's 22.0 s and 17.9 s.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import torch

# ultralytics selects its device (and sets its threads) in each step's set-up, before these callbacks run
STEP_STARTS = ("on_pretrain_routine_start", "on_predict_start", "on_val_start")


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, so a pinned container counts what it was given)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def use_every_core(_step=None) -> None:
    """Torch threads to ``usable_cores()``: an ultralytics callback for ``STEP_STARTS``."""
    torch.set_num_threads(usable_cores())


@contextmanager
def threads_kept():
    """The caller's torch thread count holds again after the block, whatever ultralytics set inside it."""
    found = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(found)


__all__ = ["STEP_STARTS", "threads_kept", "usable_cores", "use_every_core"]
