"""First teacher and student: trained from YAML on the first domain, or the user's .pt files.

Bootstrapped weights are cached under a key hashed from the config and the data, so a
second run with the same inputs skips training. Also home of the shared ultralytics
training call that the teacher and distillation steps use.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import yaml

from edge.learning_config import LearningConfig, ModelSpec, TrainSpec
from edge.yolo_dataset import LabelledImage, write_yolo_dataset

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BootstrapResult:
    """Weights of the first teacher and student; ``cached`` when no training ran."""

    teacher: Path
    student: Path
    cache_key: str
    cached: bool


def ultralytics_yolo():
    """The YOLO class, imported lazily and offline (nothing may be downloaded at run time)."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics import YOLO

    return YOLO


def model_source(spec: ModelSpec, cache_dir: Path) -> str:
    """The user's .pt, the YAML name, or a generated YAML with the narrowed scale written under ``cache_dir``."""
    if spec.weights is not None:
        return str(spec.weights)
    if spec.scale is None:
        return spec.yaml
    ultralytics_yolo()
    from ultralytics.nn.tasks import guess_model_scale, yaml_model_load

    cfg = yaml_model_load(spec.yaml)
    letter = guess_model_scale(spec.yaml) or "n"
    cfg.pop("yaml_file", None)
    cfg.pop("scale", None)
    cfg["scales"] = {letter: list(spec.scale)}
    text = yaml.safe_dump(cfg, sort_keys=False)
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    # The stem keeps the base name so ultralytics guesses the same scale letter back.
    path = Path(cache_dir) / "models" / f"{Path(spec.yaml).stem}-x{digest}.yaml"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(path)


def train_yolo(source: str, data_yaml: Path, stage: TrainSpec, config: LearningConfig, run_dir: Path,
               n_images: int = 0, **extra) -> Path:
    """One ultralytics training run on CPU with edgeloop's settings; returns the last weights.

    ``n_images`` (the training set's size) lets ``stage.target_images`` bound the epochs.
    """
    YOLO = ultralytics_yolo()
    run_dir = Path(run_dir).resolve()
    model = YOLO(source)
    model.train(data=str(data_yaml), epochs=stage.epochs_for(n_images), imgsz=config.imgsz, batch=config.batch,
                optimizer="AdamW", lr0=stage.lr0, warmup_epochs=stage.warmup_epochs, seed=config.seed,
                device=config.device, workers=0, amp=False, plots=False, verbose=False, val=False,
                project=str(run_dir.parent), name=run_dir.name, exist_ok=True, **extra)
    # val=False validates only at the end, so best.pt is just last.pt judged on a tiny split.
    return run_dir / "weights" / "last.pt"


def hash_items(items: Sequence[LabelledImage]) -> str:
    """A digest of images, boxes and classes, in order."""
    h = hashlib.sha256()
    for item in items:
        h.update(item.name.encode())
        image = item.image if isinstance(item.image, (bytes, bytearray)) else np.ascontiguousarray(item.image)
        h.update(bytes(image) if isinstance(image, (bytes, bytearray)) else image.tobytes())
        h.update(np.asarray(item.boxes, dtype=np.float32).tobytes())
        h.update(np.asarray(item.classes, dtype=np.int64).tobytes())
    return h.hexdigest()


def bootstrap_key(config: LearningConfig, data_digest: str) -> str:
    """Cache key of bootstrapped weights: what shapes the training, plus the data and ultralytics version."""
    import ultralytics

    parts = {"teacher": config.teacher.model_dump(mode="json"), "student": config.student.model_dump(mode="json"),
             "imgsz": config.imgsz, "batch": config.batch, "stage": config.bootstrap.model_dump(mode="json"),
             "seed": config.seed, "data": data_digest, "ultralytics": ultralytics.__version__}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def bootstrap_models(config: LearningConfig, train_items: Sequence[LabelledImage],
                     val_items: Sequence[LabelledImage], class_names: Sequence[str]) -> BootstrapResult:
    """Train whichever of teacher and student has no user weights; reuse cached weights when the key matches."""
    key = bootstrap_key(config, hash_items([*train_items, *val_items]))
    out_dir = Path(config.cache_dir) / "bootstrap" / key
    wanted = {role: spec for role, spec in (("teacher", config.teacher), ("student", config.student))}
    paths = {role: Path(spec.weights) if spec.weights else out_dir / f"{role}.pt" for role, spec in wanted.items()}
    to_train = [role for role, spec in wanted.items() if spec.weights is None and not paths[role].exists()]
    if not to_train:
        log.info("bootstrap: cached weights %s", key)
        return BootstrapResult(paths["teacher"], paths["student"], key, cached=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix="train-") as tmp:
        data_yaml = write_yolo_dataset(Path(tmp) / "data", {"train": train_items, "val": val_items}, class_names)
        for role in to_train:
            log.info("bootstrap: training %s from %s on %d images", role, wanted[role].yaml, len(train_items))
            last = train_yolo(model_source(wanted[role], config.cache_dir), data_yaml, config.bootstrap, config,
                              Path(tmp) / "runs" / role)
            staged = out_dir / f".{role}.pt.tmp"
            shutil.copyfile(last, staged)
            os.replace(staged, paths[role])  # atomic, so a concurrent run never sees half a file
    return BootstrapResult(paths["teacher"], paths["student"], key, cached=False)


def scenario_items(scenario, domain: str, start: int, count: int, prefix: str = "") -> list[LabelledImage]:
    """Labelled frames ``start .. start+count-1`` of one scenario domain."""
    items = []
    for i in range(start, start + count):
        frame = scenario.frame(domain, i)
        items.append(LabelledImage(f"{domain}-{prefix}{i:06d}", frame.image, frame.boxes, frame.classes))
    return items


def bootstrap_from_scenario(config: LearningConfig, scenario, val_offset: int = 100_000) -> BootstrapResult:
    """Bootstrap on the scenario's first domain (train frames from 0, val frames from ``val_offset``)."""
    from endpoint.scenario import CLASS_NAMES

    domain = scenario.domains[0].name
    train = scenario_items(scenario, domain, 0, config.bootstrap_train_frames, "train-")
    val = scenario_items(scenario, domain, val_offset, config.bootstrap_val_frames, "val-")
    return bootstrap_models(config, train, val, CLASS_NAMES)


__all__ = ["BootstrapResult", "bootstrap_from_scenario", "bootstrap_models", "model_source", "scenario_items",
           "train_yolo", "ultralytics_yolo"]
