"""The collect stage: wait for a round's uploads until the endpoints report done, the schedule, enough frames, or drift."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from edge.frame_index import FrameIndex
from edge.learner.fleet import FleetView
from edge.learner.state import TrackState
from edge.store import ObjectStore

log = logging.getLogger(__name__)

POLL_S = 0.5
DRIFT_CHECK_S = 10.0  # scoring agreement runs the teacher: not on every poll
TELEMETRY_WAIT_S = 15.0  # endpoints report their counters every few seconds (telemetry_interval_s, 5 by default)


class NoFramesError(RuntimeError):
    """A round ended its collection with no frame stored from any endpoint."""


class LearnerStopped(RuntimeError):
    """The learner was asked to stop while it waited."""


class Collector:
    """Polls the store's frame index and the endpoints' telemetry for one round."""

    def __init__(self, store: ObjectStore, fleet: FleetView, endpoint_ids: list[str], stop_event: threading.Event):
        self.index, self.fleet, self.endpoint_ids, self.stop_event = FrameIndex(store), fleet, endpoint_ids, stop_event

    def wait(self, round_index: int, settings, tracks: dict[str, TrackState], drifted: Callable[[], bool],
             started_unix_s: float) -> dict[str, int]:
        """Block until the round's data is in; return each endpoint's uploaded bytes (its counter's growth).

        Time counts from when the plans went out, so a learner restarted mid-collection does not start over.
        """
        started = time.monotonic() - max(0.0, time.time() - started_unix_s)
        next_drift_check = time.monotonic() + DRIFT_CHECK_S
        warned = False
        while True:
            if self.stop_event.is_set():
                raise LearnerStopped()
            elapsed = time.monotonic() - started
            stored = sum(self.index.count(ep, round_index) for ep in self.endpoint_ids)
            all_done = not self._not_done(round_index)
            if settings.collect_s is None:
                due = all_done or elapsed >= settings.upload_timeout_s
            else:
                due = elapsed >= settings.collect_s
            due = due or (settings.min_frames > 0 and stored >= settings.min_frames)
            if not due and time.monotonic() >= next_drift_check:
                next_drift_check = time.monotonic() + DRIFT_CHECK_S
                due = drifted()
            if due and (stored or not settings.wait_for_frames):
                break
            if due and not warned:
                log.warning("round %d: no frame stored after %.0f s; collecting on", round_index, elapsed)
                warned = True
            self.stop_event.wait(POLL_S)
        if settings.collect_s is None and not all_done:
            log.warning("round %d: no upload report from %s in %.0f s; going on", round_index,
                        self._not_done(round_index), settings.upload_timeout_s)
        if not stored:
            raise NoFramesError(f"round {round_index}: no frame reached the store from {self.endpoint_ids} in "
                                f"{elapsed:.0f} s; check the endpoints' logs, the broker and the ingest")
        self._await_counters()
        spent = {}
        for ep in self.endpoint_ids:
            track, t = tracks[ep], self.fleet.telemetry(ep)
            total = t.bytes_sent if t else track.bytes_sent_total
            spent[ep] = max(0, total - track.bytes_sent_total)
            track.bytes_sent_total = total
        return spent

    def _await_counters(self) -> None:
        """A learner restarted mid-round has heard no telemetry yet: wait a little for each online endpoint's, or
        the round's upload reads as 0 bytes and the next round is charged with it (the scheduler fits on both)."""
        deadline = time.monotonic() + TELEMETRY_WAIT_S
        while any(self.fleet.telemetry(ep) is None and self.fleet.online(ep) for ep in self.endpoint_ids):
            if time.monotonic() >= deadline or self.stop_event.wait(POLL_S):
                return

    def _not_done(self, round_index: int) -> list[str]:
        return [ep for ep in self.endpoint_ids
                if not ((t := self.fleet.telemetry(ep)) and t.round == round_index and t.round_done)]
