"""Fine-tune the teacher on newly labelled frames mixed with replay of earlier domains."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from edge.evaluate import evaluate_pt
from edge.learning_config import LearningConfig
from edge.map_metric import MapResult
from edge.replay import ReplayBuffer
from edge.training import train_stage
from edge.yolo_dataset import LabelledImage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TeacherResult:
    """The fine-tuned weights, mAP per named val set, and what went into training."""

    weights: Path
    map_by_domain: dict[str, MapResult] = field(default_factory=dict)
    new_images: int = 0
    replayed_images: int = 0
    train_s: float = 0.0


def finetune_teacher(teacher_weights: str | Path, new_items: Sequence[LabelledImage], config: LearningConfig,
                     run_dir: str | Path, class_names: Sequence[str], replay: ReplayBuffer | None = None,
                     val_sets: Mapping[str, Sequence[LabelledImage]] | None = None,
                     exclude_domain: str | None = None) -> TeacherResult:
    """Train from ``teacher_weights`` on ``new_items`` + replay; write ``run_dir/teacher.pt`` and score it per val set.

    The replay buffer is only read; adding this round's frames to it is the caller's choice.
    ``exclude_domain`` is not replayed (``new_items`` already hold that domain's frames).
    """
    run = train_stage(teacher_weights, new_items, config.finetune, config, run_dir, class_names, "teacher",
                      replay=replay, exclude_domain=exclude_domain, imgsz=config.teacher_size())
    out = run.weights
    scores = {name: evaluate_pt(out, items, config.teacher_size(), config.eval_conf)
              for name, items in (val_sets or {}).items()}
    for name, result in scores.items():
        log.info("teacher on %s: mAP50 %.3f mAP50-95 %.3f", name, result.map50, result.map50_95)
    return TeacherResult(out, scores, len(new_items), run.images - len(new_items), run.train_s)


__all__ = ["TeacherResult", "finetune_teacher"]
