"""First teacher and student: trained from YAML on the first domain, or the user's .pt files.

Bootstrapped weights are cached (``edge.training.cached_build``) under a key hashed from the
config and the data, so a second run with the same inputs skips training.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from edge.learning_config import LearningConfig
from edge.torch_threads import train_threads
from edge.training import cache_key, cached_build, hash_items, train_from_spec
from edge.yolo_dataset import LabelledImage, scenario_items

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BootstrapResult:
    """Weights of the first teacher and student; ``cached`` when no training ran."""

    teacher: Path
    student: Path
    cache_key: str
    cached: bool


def bootstrap_key(config: LearningConfig, data_digest: str) -> str:
    """Cache key of bootstrapped weights: what shapes the training, plus the data and ultralytics version."""
    parts = {"teacher": config.teacher.model_dump(mode="json"), "student": config.student.model_dump(mode="json"),
             "imgsz": config.imgsz, "batch": config.batch, "stage": config.bootstrap.model_dump(mode="json"),
             "seed": config.seed}
    if config.teacher_size() != config.imgsz:  # only then, so the keys of same-size configs stay as they were
        parts["teacher_imgsz"] = config.teacher_size()
    if config.nominal_batch is not None:  # only when set, so keys of earlier caches stay valid
        parts["nominal_batch"] = config.nominal_batch
    if (threads := train_threads(config.train_threads)) != 1:  # another thread count is another numeric draw;
        parts["train_threads"] = threads  # one thread was the only count before it was a setting
    return cache_key(parts, data_digest)


def bootstrap_models(config: LearningConfig, train_items: Sequence[LabelledImage],
                     val_items: Sequence[LabelledImage], class_names: Sequence[str]) -> BootstrapResult:
    """Train whichever of teacher and student has no user weights; reuse cached weights when the key matches."""
    key = bootstrap_key(config, hash_items([*train_items, *val_items]))
    out_dir = Path(config.cache_dir) / "bootstrap" / key
    wanted = {"teacher": config.teacher, "student": config.student}
    paths = {role: Path(spec.weights) if spec.weights else out_dir / f"{role}.pt" for role, spec in wanted.items()}
    to_train = [role for role, spec in wanted.items() if spec.weights is None]
    trained: list[str] = []

    def build(folder: Path, work: Path) -> dict[str, Path]:
        made = {}
        for role in to_train:
            log.info("bootstrap: training %s from %s on %d images", role, wanted[role].yaml, len(train_items))
            size = config.teacher_size() if role == "teacher" else config.imgsz
            made[f"{role}.pt"] = train_from_spec(wanted[role], config.bootstrap, config,
                                                 {"train": train_items, "val": val_items}, class_names, work / role,
                                                 label=f"bootstrap {role}", imgsz=size)
            trained.append(role)
        return made

    if to_train:
        cached_build(out_dir, [f"{role}.pt" for role in to_train], build)
    if not trained:
        log.info("bootstrap: cached weights %s", key)
    return BootstrapResult(paths["teacher"], paths["student"], key, cached=not trained)


def bootstrap_from_scenario(config: LearningConfig, scenario, val_offset: int = 100_000) -> BootstrapResult:
    """Bootstrap on the scenario's first domain (train frames from 0, val frames from ``val_offset``)."""
    from endpoint.sources.scenario import CLASS_NAMES

    domain = scenario.domains[0].name
    train = scenario_items(scenario, domain, 0, config.bootstrap_train_frames, "train-")
    val = scenario_items(scenario, domain, val_offset, config.bootstrap_val_frames, "val-")
    return bootstrap_models(config, train, val, CLASS_NAMES)


__all__ = ["BootstrapResult", "bootstrap_from_scenario", "bootstrap_key", "bootstrap_models"]
