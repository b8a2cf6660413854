"""Keeps each endpoint on the version the learner wants it to run, whatever it reports after a reboot or an outage.

An endpoint that comes back running another version (or none) gets its target, as a delta against the
version it reports running when the registry holds that one, else in full. A push that is refused or not
acked is tried again after ``retry_s``, doubling up to ``max_retry_s`` while the (running, target) pair
stays the same, so an endpoint that keeps refusing (wrong key, wrong fleet) is not flooded.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from edge.learner.fleet import FleetView
from edge.learner.pusher import Pusher
from endpoint.wire.manifest import version_number

log = logging.getLogger(__name__)


class Reconciler:
    """Run ``start()`` once; ``kick()`` whenever an endpoint's report or target changes."""

    def __init__(self, fleet: FleetView, pusher: Pusher, target: Callable[[str], str], endpoint_ids: list[str],
                 push_timeout_s: float, retry_s: float = 30.0, max_retry_s: float = 3600.0):
        self.fleet, self.pusher, self.target = fleet, pusher, target
        self.endpoint_ids, self.push_timeout_s = endpoint_ids, push_timeout_s
        self.retry_s, self.max_retry_s = retry_s, max_retry_s
        self._kick = threading.Event()
        self._stop = threading.Event()
        # endpoint -> (running, target, next attempt on the monotonic clock, wait after the next failure)
        self._backoff: dict[str, tuple[str, str, float, float]] = {}

    def start(self) -> "Reconciler":
        self._kick.set()  # look at once: reports that came before the start did not kick
        threading.Thread(target=self._forever, name="learner-reconcile", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._kick.set()

    def kick(self) -> None:
        """Look at every endpoint now (a report or a target changed)."""
        self._kick.set()

    def reconnected(self, endpoint_id: str) -> None:
        """It came back online: a push it missed while away goes now, not after the backoff."""
        self._backoff.pop(endpoint_id, None)
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
        with self.pusher.lock:  # decide and push as one step: the round driver may be changing the target
            running, target = self.fleet.running(endpoint_id), self.target(endpoint_id)
            if running is None or not target or running == target or not self.fleet.online(endpoint_id):
                return
            if version_number(running) > version_number(target):
                log.warning("%s runs %s, newer than its version %s; not pushing an older one", endpoint_id,
                            running, target)
                return
            backoff = self._backoff.get(endpoint_id)
            if backoff and backoff[:2] == (running, target) and time.monotonic() < backoff[2]:
                return
            wait_s = backoff[3] if backoff and backoff[:2] == (running, target) else self.retry_s
            log.info("%s runs %s, its version is %s: pushing", endpoint_id, running or "no model", target)
            outcome = self.pusher.push(endpoint_id, target, self.push_timeout_s)
        log.info("%s: %s push of %s, %d bytes, %s", endpoint_id, outcome.kind, target, outcome.bytes,
                 "acked" if outcome.acked else f"not acked ({outcome.reason}); next try in {wait_s:.0f} s")
        self._backoff[endpoint_id] = (running, target, time.monotonic() + wait_s, min(2 * wait_s, self.max_retry_s))
