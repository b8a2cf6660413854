"""Distill the student from the fine-tuned teacher with ultralytics' built-in ``distill_model`` training.

The student learns from labels (ground truth where a frame has it, teacher pseudo-labels
elsewhere) plus ultralytics' score-weighted feature loss against the frozen teacher.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from edge.bootstrap import train_yolo
from edge.learning_config import LearningConfig
from edge.replay import ReplayBuffer
from edge.yolo_dataset import LabelledImage, write_yolo_dataset

log = logging.getLogger(__name__)

_FORMAL_VAL_IMAGES = 8  # ultralytics validates once at the end even with val=False


@dataclass(frozen=True)
class DistillResult:
    """The distilled student's weights and how long training took."""

    weights: Path
    images: int
    train_s: float


def distill_student(student_weights: str | Path, teacher_weights: str | Path, items: Sequence[LabelledImage],
                    config: LearningConfig, run_dir: str | Path, class_names: Sequence[str],
                    replay: ReplayBuffer | None = None, exclude_domain: str | None = None) -> DistillResult:
    """Continue training ``student_weights`` on ``items`` (+ optional replay) with the teacher's features.

    Writes ``run_dir/student.pt``.
    """
    if not items:
        raise ValueError("distill_student needs at least one labelled image")
    run_dir = Path(run_dir)
    train = replay.mix(items, config.replay_fraction, exclude_domain) if replay is not None else list(items)
    data_yaml = write_yolo_dataset(run_dir / "student-data",
                                   {"train": train, "val": list(items[:_FORMAL_VAL_IMAGES])}, class_names)
    started = time.perf_counter()
    last = train_yolo(str(student_weights), data_yaml, config.distill, config, run_dir / "runs" / "student",
                      n_images=len(train), distill_model=str(teacher_weights), dis=config.distill_loss_weight)
    train_s = time.perf_counter() - started
    out = run_dir / "student.pt"
    shutil.copyfile(last, out)  # ultralytics strips the teacher and projector from the saved checkpoint
    log.info("distilled student from %s on %d images in %.1f s", Path(teacher_weights).name, len(train), train_s)
    return DistillResult(out, len(train), train_s)


__all__ = ["DistillResult", "distill_student"]
