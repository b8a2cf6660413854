"""Fine-tune the teacher on newly labelled frames mixed with replay of earlier domains."""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from edge.bootstrap import train_yolo
from edge.evaluate import evaluate_pt
from edge.learning_config import LearningConfig
from edge.map_metric import MapResult
from edge.replay import ReplayBuffer
from edge.yolo_dataset import LabelledImage, write_yolo_dataset

log = logging.getLogger(__name__)

# ultralytics validates once at the end of training even with val=False; a few images keep that cheap.
_FORMAL_VAL_IMAGES = 8


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
    if not new_items:
        raise ValueError("finetune_teacher needs at least one labelled image")
    run_dir = Path(run_dir)
    mixed = (replay.mix(new_items, config.replay_fraction, exclude_domain) if replay is not None
             else list(new_items))
    data_yaml = write_yolo_dataset(run_dir / "teacher-data",
                                   {"train": mixed, "val": list(new_items[:_FORMAL_VAL_IMAGES])}, class_names)
    started = time.perf_counter()
    last = train_yolo(str(teacher_weights), data_yaml, config.finetune, config, run_dir / "runs" / "teacher",
                      n_images=len(mixed))
    train_s = time.perf_counter() - started
    out = run_dir / "teacher.pt"
    shutil.copyfile(last, out)
    scores = {name: evaluate_pt(out, items, config.imgsz, config.eval_conf) for name, items in (val_sets or {}).items()}
    for name, result in scores.items():
        log.info("teacher on %s: mAP50 %.3f mAP50-95 %.3f", name, result.map50, result.map50_95)
    return TeacherResult(out, scores, len(new_items), len(mixed) - len(new_items), train_s)


__all__ = ["TeacherResult", "finetune_teacher"]
