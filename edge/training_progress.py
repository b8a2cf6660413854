"""Training you can watch: epoch, losses and time left of every ultralytics run, from its own callbacks.

Whoever runs training says where the lines go (``report_training_to(reporter)``): the lab shows them in
its status line, the service logs them. ultralytics' own console output stays off.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator

Reporter = Callable[[str], None]
_reporter: ContextVar[Reporter | None] = ContextVar("edgeloop_training_reporter", default=None)


@contextmanager
def report_training_to(reporter: Reporter) -> Iterator[None]:
    """Training runs inside the block report each epoch to ``reporter``."""
    token = _reporter.set(reporter)
    try:
        yield
    finally:
        _reporter.reset(token)


def watch(model, label: str) -> None:
    """Report ``model``'s training epochs, if someone asked for them."""
    reporter = _reporter.get()
    if reporter is None:
        return
    started = time.monotonic()

    def on_epoch_end(trainer) -> None:
        done, total = trainer.epoch + 1, trainer.epochs
        left_s = (time.monotonic() - started) / done * (total - done)
        losses = ", ".join(f"{name} {float(value):.2f}" for name, value in (trainer.tloss or {}).items())
        reporter(f"{label}: epoch {done}/{total}" + (f", loss {losses}" if losses else "") +
                 f", {int(left_s) // 60}:{int(left_s) % 60:02d} left")

    model.add_callback("on_train_epoch_end", on_epoch_end)
