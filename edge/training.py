"""The one ultralytics adapter: build a YOLO from YAML (with a scale override), train it, cache the result.

Every trainer goes through here: bootstrap, ``bench split`` and the test fixtures use
``cached_build`` (locked, keyed, published atomically); the teacher and distillation steps
use ``train_stage``. ultralytics is imported lazily, so importing this module stays cheap.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import numpy as np
import yaml

from edge.learning_config import LearningConfig, ModelSpec, TrainSpec
from edge.torch_threads import threads_kept, train_on_threads, train_threads
from edge.training_progress import watch
from edge.yolo_dataset import LabelledImage, write_yolo_dataset

if TYPE_CHECKING:
    from edge.distill_model import HeadDistillation
    from edge.replay import ReplayBuffer
    from edge.sparse_update import SparseUpdate

log = logging.getLogger(__name__)

# ultralytics validates once at the end of training even with val=False; a few images keep that cheap.
FORMAL_VAL_IMAGES = 8


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
        staged = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        staged.write_text(text)
        os.replace(staged, path)  # two processes may write the same file; neither reads half of it
    return str(path)


def train_yolo(source: str, data_yaml: Path, stage: TrainSpec, config: LearningConfig, run_dir: Path,
               n_images: int = 0, label: str = "training", sparse: SparseUpdate | None = None,
               distill_head: HeadDistillation | None = None, **extra) -> Path:
    """One ultralytics training run with edgeloop's settings; returns the last weights.

    ``n_images`` (the training set's size) lets ``stage.target_images`` bound the epochs; ``extra`` goes to
    ``YOLO.train`` as is (``distill_model=``, ``dis=``, ``freeze=``, ``deterministic=`` ...). Each epoch is
    reported as ``label: epoch i/n, loss ..., m:ss left`` where ``report_training_to`` asked for it. ``sparse``
    trains only a fraction of the coordinates (``edge.sparse_update``); ``distill_head`` (with ``distill_model=``)
    feeds the teacher at its own scale and adds head distillation (``edge.distill_model``).
    """
    YOLO = ultralytics_yolo()
    run_dir = Path(run_dir).resolve()
    settings = dict(data=str(data_yaml), epochs=stage.epochs_for(n_images), imgsz=config.imgsz, batch=config.batch,
                    optimizer="AdamW", lr0=stage.lr0, warmup_epochs=stage.warmup_epochs, seed=config.seed,
                    device=config.device, workers=0, amp=False, plots=False, verbose=False, val=False,
                    project=str(run_dir.parent), name=run_dir.name, exist_ok=True)
    if config.nominal_batch is not None:
        settings["nbs"] = config.nominal_batch
    model = YOLO(source)
    watch(model, label)
    if sparse is not None:
        sparse.attach(model)
    if distill_head is not None:
        from edge.distill_model import attach

        attach(model, distill_head)
    train_on_threads(model, train_threads(config.train_threads))
    with threads_kept():  # ultralytics sets the process's torch threads for its training; give them back
        model.train(**{**settings, **extra})
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


def cache_key(settings: Mapping, data_digest: str | None = None) -> str:
    """16 hex digits of the training settings, the data digest (when given) and the installed ultralytics version.

    The version is read from the package metadata, so a cache hit never imports ultralytics (and torch).
    """
    parts = {**settings, "ultralytics": version("ultralytics")}
    if data_digest is not None:
        parts["data"] = data_digest
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


Builder = Callable[[Path, Path], Mapping[str, Path]]


def cached_build(folder: Path, names: Sequence[str], build: Builder) -> dict[str, Path]:
    """``folder/<name>`` for each name; when one is missing, ``build(folder, work_dir)`` makes them once.

    An fcntl lock beside the folder (``<folder>.lock``) makes concurrent processes build once. ``build`` returns
    the made file for each name; each is published with an atomic rename, in ``names`` order, so a reader never
    sees half a file and the last name can mark a complete folder.
    """
    folder = Path(folder)
    wanted = {name: folder / name for name in names}
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.with_name(f"{folder.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if all(path.exists() for path in wanted.values()):
            log.info("cached: %s", folder)
            return wanted
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder, prefix="build-") as work:
            made = build(folder, Path(work))
            missing = [name for name in names if name not in made]
            if missing:
                raise RuntimeError(f"the build for {folder} made no {missing}")
            for name in names:
                staged = folder / f".{name}.tmp"
                shutil.copyfile(made[name], staged)
                os.replace(staged, wanted[name])
    return wanted


def train_from_spec(spec: ModelSpec, stage: TrainSpec, config: LearningConfig, splits: Mapping[str, Sequence],
                    class_names: Sequence[str], work_dir: Path, label: str = "training", **extra) -> Path:
    """Write ``splits`` as a YOLO folder under ``work_dir`` and train ``spec`` on it; returns the last weights."""
    data_yaml = write_yolo_dataset(Path(work_dir) / "data", dict(splits), class_names)
    return train_yolo(model_source(spec, config.cache_dir), data_yaml, stage, config, Path(work_dir) / "runs" / "m",
                      label=label, **extra)


@dataclass(frozen=True)
class StageRun:
    """Weights of one training stage, how many images it trained on (new + replayed) and how long it took."""

    weights: Path
    images: int
    train_s: float


def train_stage(start_weights: str | Path, items: Sequence[LabelledImage], stage: TrainSpec,
                config: LearningConfig, run_dir: str | Path, class_names: Sequence[str], role: str,
                replay: ReplayBuffer | None = None, exclude_domain: str | None = None, **extra) -> StageRun:
    """Train on from ``start_weights`` with ``items`` (+ replay, less ``exclude_domain``); writes ``run_dir/<role>.pt``.

    ``replay`` is only read; ``extra`` goes to ``train_yolo`` (distillation passes ``distill_model=``, ``dis=``
    and ``distill_head=``).
    """
    if not items:
        raise ValueError(f"the {role} stage needs at least one labelled image")
    run_dir = Path(run_dir)
    train = replay.mix(items, config.replay_fraction, exclude_domain) if replay is not None else list(items)
    data_yaml = write_yolo_dataset(run_dir / f"{role}-data",
                                   {"train": train, "val": list(items[:FORMAL_VAL_IMAGES])}, class_names)
    started = time.perf_counter()
    last = train_yolo(str(start_weights), data_yaml, stage, config, run_dir / "runs" / role, n_images=len(train),
                      label=role, **extra)
    train_s = time.perf_counter() - started
    out = run_dir / f"{role}.pt"
    shutil.copyfile(last, out)
    return StageRun(out, len(train), train_s)


__all__ = ["FORMAL_VAL_IMAGES", "StageRun", "cache_key", "cached_build", "hash_items", "model_source",
           "train_from_spec", "train_stage", "train_yolo", "ultralytics_yolo"]
