"""edge.torch_threads: a training runs on LearningConfig.train_threads (unset: every core, up to 8) and gives the
caller's threads back."""

from __future__ import annotations

import pytest
import torch

from edge.learning_config import LearningConfig, ModelSpec, TrainSpec
from edge.torch_threads import MAX_TRAIN_THREADS, train_on_threads, train_threads
from edge.training import train_from_spec
from edge.training_progress import report_training_to
from edge.yolo_dataset import scenario_items
from endpoint.sources.scenario import CLASS_NAMES, SyntheticScenario


@pytest.fixture
def callers_threads() -> int:
    """The caller's own thread count, set apart from ultralytics' and from the configured one."""
    from ultralytics.utils import NUM_THREADS

    found = torch.get_num_threads()
    mine = next(n for n in (5, 6, 7) if n not in (NUM_THREADS, train_threads(None)))
    torch.set_num_threads(mine)
    yield mine
    torch.set_num_threads(found)


def threads_while_training(tmp_path, train_threads: int | None) -> list[int]:
    """torch's thread count at each epoch's end of a one-epoch training on 4 tiny frames."""
    config = LearningConfig(imgsz=64, batch=4, train_threads=train_threads, cache_dir=tmp_path / "cache")
    items = scenario_items(SyntheticScenario(), "day", 0, 4, "train-")
    during: list[int] = []
    with report_training_to(lambda _line: during.append(torch.get_num_threads())):
        train_from_spec(ModelSpec(yaml="yolo11n.yaml", scale=(0.33, 0.0625, 64)), TrainSpec(epochs=1), config,
                        {"train": items, "val": items[:2]}, CLASS_NAMES, tmp_path / f"work-{train_threads}")
    return during


@pytest.mark.integration
def test_a_training_runs_on_the_configured_threads_and_gives_the_callers_back(tmp_path, callers_threads):
    assert threads_while_training(tmp_path, 3) == [3]
    assert torch.get_num_threads() == callers_threads


@pytest.mark.integration
def test_unset_trains_on_every_core_and_still_gives_the_callers_back(tmp_path, callers_threads):
    assert threads_while_training(tmp_path, None) == [train_threads(None)]
    assert torch.get_num_threads() == callers_threads


def test_unset_means_every_core_up_to_ultralytics_cap(monkeypatch):
    for cores, threads in ((1, 1), (2, 2), (6, 6), (32, MAX_TRAIN_THREADS), (None, 1)):
        monkeypatch.setattr("os.cpu_count", lambda cores=cores: cores)
        assert train_threads(None) == threads
    assert train_threads(3) == 3


def test_the_bootstrap_cache_key_tells_thread_counts_apart():
    from edge.bootstrap import bootstrap_key

    key = {n: bootstrap_key(LearningConfig(train_threads=n), "data") for n in (1, 2, 3)}
    assert len(set(key.values())) == 3  # another count is another numeric draw: not the cached weights


def test_a_training_needs_a_thread():
    with pytest.raises(ValueError, match="at least one thread"):
        train_on_threads(object(), 0)
