"""Keeps each endpoint on the version the learner wants it to run, whatever it reports after a reboot or an outage.

An endpoint that comes back running another version (or none) gets its target, as a delta against the
version it reports running when the registry holds that one, else in full. Never twice in a row for the
same (running, target) pair unless it reconnects or ``retry_s`` has passed.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from edge.learner.fleet import FleetView
from edge.learner.pusher import Pusher

log = logging.getLogger(__name__)


class Reconciler:
    """Run ``start()`` once; ``kick()`` whenever an endpoint's report or target changes."""

    def __init__(self, fleet: FleetView, pusher: Pusher, target: Callable[[str], str], endpoint_ids: list[str],
                 push_timeout_s: float, retry_s: float = 30.0):
        self.fleet, self.pusher, self.target = fleet, pusher, target
        self.endpoint_ids, self.push_timeout_s, self.retry_s = endpoint_ids, push_timeout_s, retry_s
        self._kick = threading.Event()
        self._stop = threading.Event()
        self._last_attempt: dict[str, tuple[str, str, float]] = {}

    def start(self) -> "Reconciler":
        threading.Thread(target=self._forever, name="learner-reconcile", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._kick.set()

    def kick(self, endpoint_id: str = "") -> None:
        if endpoint_id:
            self._last_attempt.pop(endpoint_id, None)  # a new report: it may have reconnected
        self._kick.set()

    def _forever(self) -> None:
        while not self._stop.is_set():
            self._kick.wait(timeout=self.retry_s / 3)
            self._kick.clear()
            for endpoint_id in self.endpoint_ids:
                if self._stop.is_set():
                    return
                try:
                    self.reconcile(endpoint_id)
                except Exception:
                    log.exception("bringing %s to its version failed", endpoint_id)

    def reconcile(self, endpoint_id: str) -> None:
        running, target = self.fleet.running(endpoint_id), self.target(endpoint_id)
        if running is None or not target or running == target or not self.fleet.online(endpoint_id):
            return
        last = self._last_attempt.get(endpoint_id)
        if last and last[:2] == (running, target) and time.monotonic() - last[2] < self.retry_s:
            return
        self._last_attempt[endpoint_id] = (running, target, time.monotonic())
        log.info("%s runs %s, its version is %s: pushing", endpoint_id, running or "no model", target)
        outcome = self.pusher.push(endpoint_id, target, self.push_timeout_s)
        log.info("%s: %s push of %s, %d bytes, %s", endpoint_id, outcome.kind, target, outcome.bytes,
                 "acked" if outcome.acked else f"not acked ({outcome.reason})")
