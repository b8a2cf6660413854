"""Torch threads of a training: ultralytics keeps one core free, which on a 2-core edge is half the machine.

ultralytics sets torch to ``min(8, cores - 1)`` threads when it selects a device, one thread on 2 cores.
``LearningConfig.train_threads`` overrides it per training; the caller's own setting holds again afterwards.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

# the trainer selects its device (and sets ultralytics' thread count) in its set-up, before this event
TRAINING_START = "on_pretrain_routine_start"


def train_on_threads(yolo, threads: int) -> None:
    """Have ``yolo``'s next training run torch on ``threads`` threads."""
    if threads < 1:
        raise ValueError(f"a training needs at least one thread, not {threads}")
    yolo.add_callback(TRAINING_START, lambda _trainer: torch.set_num_threads(threads))


@contextmanager
def threads_kept():
    """The caller's torch thread count holds again after the block, whatever ultralytics set inside it."""
    found = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(found)


__all__ = ["TRAINING_START", "threads_kept", "train_on_threads"]
