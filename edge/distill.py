"""Distill the student from the fine-tuned teacher with ultralytics' built-in ``distill_model`` training.

The student learns from labels (ground truth where a frame has it, teacher pseudo-labels
elsewhere), plus ultralytics' score-weighted feature loss against the frozen teacher when
``distill_loss_weight`` is above 0 (``edgeloop bench distill`` measures whether it pays).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from edge.learning_config import LearningConfig
from edge.replay import ReplayBuffer
from edge.sparse_update import SparseUpdate
from edge.training import train_stage
from edge.yolo_dataset import LabelledImage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistillResult:
    """The distilled student's weights and how long training took."""

    weights: Path
    images: int
    train_s: float


def distill_student(student_weights: str | Path, teacher_weights: str | Path, items: Sequence[LabelledImage],
                    config: LearningConfig, run_dir: str | Path, class_names: Sequence[str],
                    replay: ReplayBuffer | None = None, exclude_domain: str | None = None,
                    sparse: SparseUpdate | None = None) -> DistillResult:
    """Continue training ``student_weights`` on ``items`` (+ optional replay) with the teacher's features.

    Writes ``run_dir/student.pt``; ``sparse`` trains only a fraction of its coordinates (``edge.sparse_update``).
    """
    # student.pt is the student alone: ultralytics strips the teacher and projector when it saves
    teacher = {"distill_model": str(teacher_weights), "dis": config.distill_loss_weight}
    # weight 0: no feature loss, so the teacher's forward pass on every batch would buy nothing
    stage = config.distill if sparse is None else \
        config.distill.model_copy(update={"lr0": config.distill.lr0 * config.sparse_lr_scale})
    run = train_stage(student_weights, items, stage, config, run_dir, class_names, "student",
                      replay=replay, exclude_domain=exclude_domain, sparse=sparse, **(teacher if config.distill_loss_weight else {}))
    log.info("distilled student from %s on %d images in %.1f s", Path(teacher_weights).name, run.images, run.train_s)
    return DistillResult(run.weights, run.images, run.train_s)


__all__ = ["DistillResult", "distill_student"]
