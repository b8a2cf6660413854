"""What a learner keeps on disk from round to round: the newest two rounds' weights, runs and replay folders, and
what the state still names. The rest goes, so a learner that runs for months does not fill its disk."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from edge.learner.state import LearnerState

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


__all__ = ["prune_round_outputs"]
