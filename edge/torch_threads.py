"""Torch threads of a training: every core, up to ultralytics' cap of 8, not ultralytics' ``cores - 1``.

ultralytics sets torch to ``min(8, cores - 1)`` threads when it selects a device: one thread on a 2-core edge,
half the machine, while our trainings load data in the training process (``workers=0``) and so leave no other
work for the spare core. ``LearningConfig.train_threads`` sets the count; the caller's own holds again afterwards.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import torch

# the trainer selects its device (and sets ultralytics' thread count) in its set-up, before this event
TRAINING_START = "on_pretrain_routine_start"
MAX_TRAIN_THREADS = 8  # ultralytics' own cap


def train_threads(configured: int | None) -> int:
    """The torch threads a training runs on: ``configured``, or every core up to ``MAX_TRAIN_THREADS``."""
    return configured if configured is not None else max(1, min(MAX_TRAIN_THREADS, os.cpu_count() or 1))


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


__all__ = ["MAX_TRAIN_THREADS", "TRAINING_START", "threads_kept", "train_on_threads", "train_threads"]
