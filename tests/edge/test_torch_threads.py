"""edge.torch_threads: ultralytics' steps run on every usable core and give the caller's threads back."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edge.learning_config import LearningConfig, ModelSpec, TrainSpec
from edge.torch_threads import usable_cores
from edge.training import train_from_spec, ultralytics_yolo
from edge.training_progress import report_training_to
from edge.yolo_dataset import scenario_items
from endpoint.sources.scenario import CLASS_NAMES, SyntheticScenario

# with one core, ultralytics' cores - 1 (at least 1) and every core are the same count
needs_two_cores = pytest.mark.skipif(usable_cores() < 2, reason="one usable core: nothing to tell apart")


@pytest.fixture
def one_thread():
    found = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(found)


@needs_two_cores
def test_prediction_runs_on_every_core_and_gives_the_threads_back(one_thread):
    model = ultralytics_yolo()(ModelSpec(yaml="yolo11n.yaml").yaml)
    during: list[int] = []
    model.add_callback("on_predict_postprocess_end", lambda _predictor: during.append(torch.get_num_threads()))
    model.predict(np.zeros((64, 64, 3), np.uint8), imgsz=64, device="cpu", verbose=False)
    assert during == [usable_cores()]
    assert torch.get_num_threads() == 1


@needs_two_cores
@pytest.mark.integration
def test_training_runs_on_every_core_and_gives_the_threads_back(tmp_path, one_thread):
    config = LearningConfig(imgsz=64, batch=4, cache_dir=tmp_path / "cache")
    items = scenario_items(SyntheticScenario(), "day", 0, 4, "train-")
    during: list[int] = []
    with report_training_to(lambda _line: during.append(torch.get_num_threads())):
        train_from_spec(ModelSpec(yaml="yolo11n.yaml", scale=(0.33, 0.0625, 64)), TrainSpec(epochs=1), config,
                        {"train": items, "val": items[:2]}, CLASS_NAMES, tmp_path / "work")
    assert during == [usable_cores()]
    assert torch.get_num_threads() == 1
