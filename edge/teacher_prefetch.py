"""The onnxruntime teacher's class logits for the next training batch, on a worker thread, while torch trains on this.

Logit-only distillation runs the teacher (``edge.teacher_scores``, one onnxruntime thread) on every batch; run in
the loss, it waits for the student's forward and backward and they wait for it. torch leaves much of a
2-core machine idle on the lab's small models (the second core at one torch thread, ultralytics' own count; much
of it at two, ``train_threads``' default there), and onnxruntime releases the GIL, so ``TeacherPrefetch`` wraps
the trainer's loader: handing out batch k, it submits batch k+1's teacher view to one worker thread, and the loss
takes the result for its own batch (``take``). The logits are the sequential path's: the view is made from the
same images as ultralytics' ``preprocess_batch`` makes them (uint8 / 255, on the CPU), and ``take`` hands them out
only when the batch's preprocessed images equal the ones the view was made from; otherwise the loss runs the
teacher itself. Measured (bench distill's frames, 7 epochs, training seeds 0-5, shared 2-core machine): the
distilled student's training 31.9 s wall to 23.4 s (0.70-0.76x), CPU 33.0 s to 34.2 s, weights unchanged; then
torch ran on one of the two cores after the teacher's export (a fault, fixed since: docs/distillation.md), so the
prefetch had that core to itself. The default cached teacher (``edge.teacher_cache``) needs no prefetch.
"""

from __future__ import annotations

import logging
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterable

import torch

log = logging.getLogger(__name__)

THREAD_NAME = "teacher-prefetch"


@dataclass
class Prefetched:
    """One batch handed to the worker: the loader's batch dict, its images as the loss will see them, the logits."""

    batch: dict
    images: torch.Tensor
    logits: Future


class TeacherPrefetch:
    """A training loader whose batches come with their teacher logits computed one batch ahead on a worker thread.

    ``teacher`` maps the teacher's view (B, 3, H, W floats in 0..1) to class logits; ``view`` makes that view
    from the student's images; ``wanted(n)`` says whether the n-th batch handed out (counting from ``start``)
    needs the teacher at all. Everything else (``len``, ``dataset``, ``reset``...) is the wrapped loader's.
    """

    def __init__(self, loader: Iterable[dict], teacher: Callable[[torch.Tensor], torch.Tensor],
                 view: Callable[[torch.Tensor], torch.Tensor], wanted: Callable[[int], bool] = lambda n: True,
                 start: int = 0):
        self.loader = loader
        self.teacher, self.view, self.wanted = teacher, view, wanted
        self.handed_out = start  # batches handed out, the number the next one gets for ``wanted``
        self.pending: deque[Prefetched] = deque()
        self.pool: ThreadPoolExecutor | None = ThreadPoolExecutor(max_workers=1, thread_name_prefix=THREAD_NAME)
        self.overlapped = self.missed = 0
        self._warned = False

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name):
        if name == "loader":  # not set yet (e.g. while unpickling): no recursion through the lookup below
            raise AttributeError(name)
        return getattr(self.loader, name)

    def __iter__(self):
        """One pass of the wrapped loader; each batch's teacher pass is submitted before the previous batch goes out."""
        self._drop(len(self.pending))  # a pass left early (an OOM retry, a stop) leaves no stale batch behind
        batches = iter(self.loader)
        ahead = next(batches, None)
        if ahead is not None:
            self._submit(ahead)
        while ahead is not None:
            current, ahead = ahead, next(batches, None)
            if ahead is not None:  # within a pass only: between passes come validation and mosaic changes
                self._submit(ahead)
            yield current

    def _submit(self, batch: dict) -> None:
        wanted = self.wanted(self.handed_out)
        self.handed_out += 1
        if not wanted or self.pool is None:
            return
        self._drop(len(self.pending) - 1)  # bounded: the batch being trained on, and this one
        raw = batch["img"]
        images = raw.float() / 255 if raw.dtype == torch.uint8 else raw.float()  # as ``preprocess_batch`` makes them
        view = self.view(images)  # here, on the trainer's thread: torch ops on a second thread start more threads
        self.pending.append(Prefetched(batch, images, self.pool.submit(self.teacher, view)))

    def _drop(self, count: int) -> None:
        for _ in range(max(0, count)):
            self.pending.popleft().logits.cancel()

    def take(self, batch: dict) -> torch.Tensor | None:
        """The teacher logits prefetched for ``batch`` (this very dict, its images unchanged); None: run the teacher."""
        for index, entry in enumerate(self.pending):
            if entry.batch is batch:
                self._drop(index)  # earlier batches never reached the loss (skipped by ``wanted``'s caller)
                self.pending.popleft()
                images = batch["img"]
                if images.shape != entry.images.shape or images.dtype != entry.images.dtype or \
                        images.device != entry.images.device or not torch.equal(images, entry.images):
                    self._miss("the trainer changed the batch's images after loading (multi-scale, a device?)")
                    return None
                self.overlapped += 1
                return entry.logits.result()
        self._miss("no teacher pass was prefetched for this batch")
        return None

    def _miss(self, why: str) -> None:
        self.missed += 1
        if not self._warned:
            self._warned = True
            log.info("teacher prefetch: %s; the loss runs the teacher itself", why)

    def close(self) -> None:
        """End the worker thread (waiting for a pass under way), then close the wrapped loader if it can be."""
        if self.pool is not None:
            self._drop(len(self.pending))
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
            log.info("teacher prefetch: %d teacher passes overlapped with training, %d ran in the loss",
                     self.overlapped, self.missed)
        if hasattr(self.loader, "close"):
            self.loader.close()


__all__ = ["THREAD_NAME", "Prefetched", "TeacherPrefetch"]
