"""The student's labels where there is no ground truth: the fine-tuned teacher's, not the ones it started from.

A round labels its frames with the teacher before its fine-tune, and earlier rounds' frames kept the labels of
older teachers still; ``relabel_for_student`` has the round's fine-tuned teacher label the domain's newest stored
frames afresh for the student. The replay buffer, the teacher's own set, keeps the labels it had: a teacher
fine-tuned on its own fresh labels fell to 0.10 / 0.11 mAP50-95 on dusk by the lab's round 3, against 0.26 /
0.28. Measured in ``LearningConfig.teacher_relabel_frames``.
"""

from __future__ import annotations

import logging
from typing import Iterable, Sequence

from edge.frame_index import FrameIndex, FrameRecord
from edge.labels import LabelContext, label_frames
from edge.scheduler.policy import RoundRecord
from edge.store import ObjectStore
from edge.yolo_dataset import LabelledImage

log = logging.getLogger(__name__)


def relabel_for_student(items: Sequence[LabelledImage], store: ObjectStore, endpoints: Iterable[str],
                        history: Sequence[RoundRecord], domain: str, round_index: int, sources: Sequence[str],
                        ctx: LabelContext, limit: int) -> list[LabelledImage]:
    """``items`` (the domain's kept images) relabelled on the domain's newest ``limit`` stored frames of
    ``endpoints``: ground truth where a frame has it (``sources`` in order), ``ctx``'s teacher's boxes elsewhere.

    The domain's rounds are ``round_index`` and those of ``history`` in ``domain``. Frames the old teacher left
    unlabelled join where the new one finds boxes. A kept image the new teacher finds nothing in keeps its old
    labels, and kept images with no stored frame (the bootstrap's) stay as they are. ``limit`` 0: ``items``.
    """
    if limit <= 0:
        return list(items)
    endpoints = list(endpoints)
    rounds = sorted({r.round for r in history if r.domain == domain} | {round_index})
    index = FrameIndex(store)
    records: list[FrameRecord] = []
    for rnd in reversed(rounds):  # newest first: a long domain lists only the rounds it needs
        if len(records) >= limit:
            break
        records = [rec for ep in endpoints for rec in index.frames(ep, rnd)] + records
    records = records[-limit:]
    frames = label_frames(store, records, list(sources), ctx)
    by_name = {item.name: item for item in items}
    by_name.update((f.item.name, f.item) for f in frames)
    log.info("round %d: the fine-tuned teacher labelled %d of the %d newest %s frames for the student",
             round_index, sum(f.source == "teacher" for f in frames), len(records), domain)
    return list(by_name.values())


__all__ = ["relabel_for_student"]
