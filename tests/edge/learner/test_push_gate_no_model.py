"""An endpoint that runs no model yet is due its track's version: a round's candidate that scores below that
version is not made its target (it was: a late endpoint got a student far worse than the one it was due)."""

from __future__ import annotations

from types import SimpleNamespace

from edge.learner.round_driver import RoundDriver
from edge.learner.state import TrackState

SCORES = {"v0001": 0.415, "v0002": 0.019, "v0003": 0.5}


def driver_seeing(running: str | None) -> SimpleNamespace:
    """The parts of a RoundDriver the gate reads: what the endpoint reports running, its val set, the scores."""
    return SimpleNamespace(_deployed=lambda track: running or track.running_version, _val=lambda track: ["frame"],
                           _map=lambda track, version: SimpleNamespace(map50_95=SCORES[version]))


def test_no_model_running_gates_against_the_version_it_is_due():
    track = TrackState(endpoint_id="cam-1", target_version="v0001", domain="live")
    for running in (None, ""):  # never reported, or reported running nothing
        why = RoundDriver._worse_than_deployed(driver_seeing(running), track, "v0002")
        assert why is not None and "v0002" in why and "v0001, which it is due (it runs no model yet)" in why
        assert RoundDriver._worse_than_deployed(driver_seeing(running), track, "v0003") is None


def test_what_it_runs_still_wins_over_its_target():
    track = TrackState(endpoint_id="cam-1", target_version="v0001", running_version="v0002", domain="live")
    assert RoundDriver._worse_than_deployed(driver_seeing("v0002"), track, "v0001") is None  # 0.415 over 0.019
    why = RoundDriver._worse_than_deployed(driver_seeing("v0001"), track, "v0002")
    assert why is not None and why.endswith("0.415 of v0001, which it runs")
