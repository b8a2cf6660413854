"""What a learner keeps from round to round: the newest two rounds' weights, runs and replay folders, what the state
still names, and the student versions an endpoint runs or is due besides the newest few. The rest goes, so a
learner that runs for months fills neither its disk nor its bucket."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

from edge.learner.config import KEEP_VERSIONS
from edge.learner.setup import STUDENT_NAME
from edge.learner.state import LearnerState, RoundProgress
from edge.store import StoreError

log = logging.getLogger(__name__)

# folder under the state dir -> names of the files or folders a round leaves there, numbered by round
ROUND_OUTPUTS = (("models", r"(?:teacher|student)-r(\d+)\.pt"), ("work", r"round-(\d+)"),
                 (".", r"replay-(?:r(\d+)|boot)"))


def prune_round_outputs(state_dir: Path, state: LearnerState, round_index: int) -> None:
    """Drop weights, runs and replay folders older than the round before ``round_index`` (and the bootstrap's
    replay), except what the state still names."""
    keep = {Path(p).resolve() for p in (state.teacher_pt, state.student_pt, state.replay_dir)}
    for folder, pattern in ROUND_OUTPUTS:
        for path in (state_dir / folder).glob("*"):
            match = re.fullmatch(pattern, path.name)
            if not match or path.resolve() in keep:
                continue
            number = match.group(1)  # None: the bootstrap's
            if number is None or int(number) < round_index - 1:
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)



def forget_after_round(driver, finished: RoundProgress, keep_versions: int = KEEP_VERSIONS) -> None:
    """After ``finished`` is saved: its older rounds' outputs, the scorer's copies of versions out of use, and the
    registry's versions no endpoint runs, is due or ran at the round's start, past the newest ``keep_versions``."""
    state = driver.state
    prune_round_outputs(driver.state_dir, state, finished.round)
    in_use = {v for t in state.tracks.values() for v in (t.running_version, t.target_version, driver._deployed(t))}
    in_use = (in_use | set(finished.versions_before.values()) | {finished.candidate_version}) - {""}
    driver.scorer.forget(in_use, state.teacher_pt)
    try:
        with driver.pusher.lock:  # a push reads its parent version's bytes from the registry
            driver.registry.prune(STUDENT_NAME, in_use, keep_versions)
    except StoreError as exc:  # nothing is lost by waiting: the next round prunes again
        log.warning("round %d: pruning old versions failed: %s", finished.round, exc)
    finally:  # some may be gone, even after an error: the next report of one looks the registry up again
        driver.forget_registered()


__all__ = ["forget_after_round", "prune_round_outputs"]
