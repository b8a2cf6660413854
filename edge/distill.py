"""Distill the student from the fine-tuned teacher with ultralytics' built-in ``distill_model`` training.

The student learns from labels (ground truth where a frame has it, teacher pseudo-labels
elsewhere), plus, against the frozen teacher fed at its own input scale (``edge.distill_model``), the
teacher's class scores (``distill_logit_weight``), boxes (``distill_box_weight``) and ultralytics'
score-weighted features (``distill_loss_weight``); ``edgeloop bench distill`` measures whether they pay.
Class scores alone come from the teacher's ONNX export on onnxruntime (``edge.teacher_scores``), at a third of
the torch teacher's CPU: by default once per training image, cached for every epoch (``edge.teacher_cache``; the
student then trains without geometric augmentation), else on every ``distill_every_batches``-th batch.
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
    teacher = teacher_arguments(teacher_weights, config)
    stage = config.distill if sparse is None else \
        config.distill.model_copy(update={"lr0": config.distill.lr0 * config.sparse_lr_scale})
    run = train_stage(student_weights, items, stage, config, run_dir, class_names, "student",
                      replay=replay, exclude_domain=exclude_domain, sparse=sparse, **teacher)
    log.info("distilled student from %s on %d images in %.1f s", Path(teacher_weights).name, run.images, run.train_s)
    return DistillResult(run.weights, run.images, run.train_s)


def teacher_arguments(teacher_weights: str | Path, config: LearningConfig) -> dict:
    """``train_stage`` arguments that distill from ``teacher_weights``; none when every distillation weight is 0."""
    if not (config.distill_loss_weight or config.distill_logit_weight or config.distill_box_weight):
        return {}  # no distillation term: the teacher's forward pass on every batch would buy nothing
    from edge.distill_model import HeadDistillation

    # the cache holds class logits: the feature and box terms need the teacher on every batch
    cached = config.distill_cached_teacher and not (config.distill_loss_weight or config.distill_box_weight)
    if config.distill_cached_teacher and not cached:
        log.info("teacher cache off: the feature and box distillation terms need the teacher on every batch")

    head = HeadDistillation(teacher_scale=config.teacher_size() / config.imgsz,
                            logit_weight=config.distill_logit_weight, box_weight=config.distill_box_weight,
                            temperature=config.distill_temperature, logit_pool=config.distill_logit_pool,
                            onnx_teacher=True, every_batches=config.distill_every_batches,
                            overlap=config.distill_overlap_teacher, cached_teacher=cached)
    arguments = {"distill_model": str(teacher_weights), "dis": config.distill_loss_weight, "distill_head": head}
    if cached:
        from edge.teacher_cache import FIXED_GEOMETRY

        arguments.update(FIXED_GEOMETRY)  # the cached logits fit each image only in the geometry they were made in
    return arguments


__all__ = ["DistillResult", "distill_student", "teacher_arguments"]
