"""Session fixtures that train a tiny YOLO from scratch on synthetic frames (no downloads) and export it to ONNX.

Results are cached under ``<repo>/.cache/test-models/<settings hash>/`` so only the first run pays for training.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
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
        # no data digest: the data are a pure function of these settings, and the warm caches keep this key
        from edge.training import cache_key

        return cache_key(asdict(self))


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
    from edge.training import cached_build

    folder = cache_root / settings.key()
    # done.json, published last, marks a complete folder; the lock is <key>.lock beside it, as before
    files = cached_build(folder, ["tiny_yolo.pt", "tiny_yolo.onnx", "done.json"],
                         lambda folder, work: _train_and_export(settings, folder, work))
    return TinyYolo(pt=files["tiny_yolo.pt"], onnx=files["tiny_yolo.onnx"], data_yaml=folder / "data" / "data.yaml",
                    imgsz=settings.imgsz, settings=settings)


def _train_and_export(settings: TinyYoloSettings, folder: Path, work: Path) -> dict[str, Path]:
    from edge.learning_config import LearningConfig, ModelSpec, TrainSpec
    from edge.training import model_source, train_yolo, ultralytics_yolo
    from edge.yolo_dataset import scenario_dataset
    from endpoint.sources.scenario import SyntheticScenario

    started = time.monotonic()
    # the data stay in the folder: tests read TinyYolo.data_yaml
    data_yaml = scenario_dataset(folder / "data", SyntheticScenario(), settings.domain, settings.n_train,
                                 settings.n_val)
    config = LearningConfig(imgsz=settings.imgsz, batch=settings.batch, seed=settings.seed, device="cpu",
                            cache_dir=folder)
    spec = ModelSpec(yaml="yolo11n.yaml", scale=(settings.depth, settings.width, settings.max_channels))
    stage = TrainSpec(epochs=settings.epochs, lr0=settings.lr0, warmup_epochs=1.0)
    last = train_yolo(model_source(spec, folder), data_yaml, stage, config, work / "runs" / "train",
                      close_mosaic=5, deterministic=True, cache=True)
    exported = Path(ultralytics_yolo()(str(last)).export(format="onnx", imgsz=settings.imgsz, device="cpu"))
    train_s = time.monotonic() - started
    done = work / "done.json"
    done.write_text(json.dumps({"settings": asdict(settings), "train_s": round(train_s, 1)}))
    log.info("trained and exported the tiny YOLO in %.1f s into %s", train_s, folder)
    return {"tiny_yolo.pt": last, "tiny_yolo.onnx": exported, "done.json": done}


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
