"""Session fixtures that train a tiny YOLO from scratch on synthetic frames (no downloads) and export it to ONNX.

Results are cached under ``<repo>/.cache/test-models/<settings hash>/`` so only the first run pays for training.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path

import pytest

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
CACHE_ROOT = REPO_ROOT / ".cache" / "test-models"


@dataclass(frozen=True)
class TinyYoloSettings:
    """Everything that changes the trained model; its hash names the cache folder."""

    depth: float = 0.50
    # 0.125 x min(channels, 256): at most 32 channels (yolo11n: 256), 0.28 M parameters; trains in ~1 min on 2 cores
    width: float = 0.125
    max_channels: int = 256
    domain: str = "day"
    n_train: int = 200
    n_val: int = 32
    epochs: int = 16
    imgsz: int = 128
    batch: int = 16
    lr0: float = 0.01
    seed: int = 0

    def key(self) -> str:
        # the installed version, read without importing ultralytics (and torch) for a cache hit
        blob = json.dumps({**asdict(self), "ultralytics": version("ultralytics")}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TinyYolo:
    """A trained tiny detector: weights, its ONNX export and the data set it learnt from."""

    pt: Path
    onnx: Path
    data_yaml: Path
    imgsz: int
    settings: TinyYoloSettings


def build_tiny_yolo(settings: TinyYoloSettings = TinyYoloSettings(), cache_root: Path = CACHE_ROOT) -> TinyYolo:
    """Train and export once per settings; later calls (and other processes) reuse the cached files."""
    folder = cache_root / settings.key()
    cache_root.mkdir(parents=True, exist_ok=True)
    # a file lock, because parallel pytest runs of other engineers share this cache
    with open(cache_root / f"{settings.key()}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not all((folder / name).exists() for name in ("done.json", "tiny_yolo.pt", "tiny_yolo.onnx")):
            _train_and_export(settings, folder)
    return TinyYolo(pt=folder / "tiny_yolo.pt", onnx=folder / "tiny_yolo.onnx",
                    data_yaml=folder / "data" / "data.yaml", imgsz=settings.imgsz, settings=settings)


def _train_and_export(settings: TinyYoloSettings, folder: Path) -> None:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    import yaml
    from ultralytics import YOLO
    from ultralytics.utils.checks import check_yaml

    from edge.yolo_dataset import scenario_dataset
    from endpoint.scenario import CLASS_NAMES, SyntheticScenario

    # built in place under the lock; done.json, written last, marks a complete folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    started = time.monotonic()
    data_yaml = scenario_dataset(folder / "data", SyntheticScenario(), settings.domain, settings.n_train,
                                 settings.n_val)

    arch = yaml.safe_load(Path(check_yaml("yolo11.yaml")).read_text())
    arch.update(nc=len(CLASS_NAMES), scales={"n": [settings.depth, settings.width, settings.max_channels]})
    arch_yaml = folder / "yolo11n-tiny.yaml"  # the 'n' in the name selects the only scale
    arch_yaml.write_text(yaml.safe_dump(arch, sort_keys=False))

    model = YOLO(str(arch_yaml))
    model.train(data=str(data_yaml), epochs=settings.epochs, imgsz=settings.imgsz, batch=settings.batch,
                lr0=settings.lr0, optimizer="AdamW", warmup_epochs=1.0, close_mosaic=5, seed=settings.seed,
                deterministic=True, device="cpu", workers=0, plots=False, val=False, amp=False, cache=True,
                verbose=False, project=str(folder / "runs"), name="train", exist_ok=True)
    shutil.copy(folder / "runs" / "train" / "weights" / "last.pt", folder / "tiny_yolo.pt")
    exported = YOLO(str(folder / "tiny_yolo.pt")).export(format="onnx", imgsz=settings.imgsz, device="cpu")
    if Path(exported) != folder / "tiny_yolo.onnx":
        shutil.move(exported, folder / "tiny_yolo.onnx")
    shutil.rmtree(folder / "runs", ignore_errors=True)
    train_s = time.monotonic() - started
    (folder / "done.json").write_text(json.dumps({"settings": asdict(settings), "train_s": round(train_s, 1)}))
    log.info("trained and exported the tiny YOLO in %.1f s into %s", train_s, folder)


@pytest.fixture(scope="session")
def tiny_yolo() -> TinyYolo:
    """The tiny detector trained on the scenario's day domain (cached across runs)."""
    return build_tiny_yolo()


@pytest.fixture(scope="session")
def tiny_yolo_pt(tiny_yolo: TinyYolo) -> Path:
    """Path of the tiny detector's ultralytics weights (.pt)."""
    return tiny_yolo.pt


@pytest.fixture(scope="session")
def tiny_yolo_onnx(tiny_yolo: TinyYolo) -> Path:
    """Path of the tiny detector's FP32 ONNX export (imgsz 128, ultralytics metadata inside)."""
    return tiny_yolo.onnx
