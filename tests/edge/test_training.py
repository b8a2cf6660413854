"""edge.training: the one cached, locked YOLO build and the shared training stage."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from importlib.metadata import version

import numpy as np
import pytest

from edge.learning_config import LearningConfig, ModelSpec, TrainSpec
from edge.training import cache_key, cached_build, hash_items, train_from_spec, train_stage
from edge.yolo_dataset import LabelledImage, scenario_items
from endpoint.sources.scenario import CLASS_NAMES, SyntheticScenario
from tests.model_fixtures import TinyYoloSettings


def counting_builder(calls: list):
    def build(folder, work):
        calls.append(work)
        made = {}
        for name in ("a.bin", "done.json"):
            (work / name).write_text(f"{name} {len(calls)}")
            made[name] = work / name
        return made

    return build


def test_builds_once_then_reuses_the_published_files(tmp_path):
    calls: list = []
    folder = tmp_path / "cache" / "k1"
    first = cached_build(folder, ["a.bin", "done.json"], counting_builder(calls))
    again = cached_build(folder, ["a.bin", "done.json"], counting_builder(calls))
    assert len(calls) == 1 and first == again == {"a.bin": folder / "a.bin", "done.json": folder / "done.json"}
    assert first["a.bin"].read_text() == "a.bin 1"
    assert (tmp_path / "cache" / "k1.lock").exists()  # the lock lives beside the folder, as the test cache's did
    assert sorted(p.name for p in folder.iterdir()) == ["a.bin", "done.json"]  # no work dir, no staged files left


def test_an_incomplete_folder_is_built_again(tmp_path):
    calls: list = []
    folder = tmp_path / "k2"
    cached_build(folder, ["a.bin", "done.json"], counting_builder(calls))
    (folder / "done.json").unlink()  # a run killed before it published the marker
    cached_build(folder, ["a.bin", "done.json"], counting_builder(calls))
    assert len(calls) == 2 and (folder / "done.json").read_text() == "done.json 2"


def test_a_build_that_misses_a_file_is_an_error_and_publishes_nothing(tmp_path):
    folder = tmp_path / "k3"
    with pytest.raises(RuntimeError, match="made no"):
        cached_build(folder, ["a.bin", "missing.bin"], lambda folder, work: {"a.bin": work / "nope"})
    assert not (folder / "a.bin").exists()


def test_key_covers_settings_data_and_version_and_keeps_the_test_cache_key():
    settings = {"epochs": 3, "scale": (0.33, 0.25, 256)}
    assert cache_key(settings) != cache_key({**settings, "epochs": 4})
    assert cache_key(settings, "d1") != cache_key(settings, "d2") != cache_key(settings)
    # the warm .cache/test-models folders were named with this recipe before edge.training existed
    tiny = TinyYoloSettings()
    old = json.dumps({**asdict(tiny), "ultralytics": version("ultralytics")}, sort_keys=True)
    assert tiny.key() == hashlib.sha256(old.encode()).hexdigest()[:16]


def test_data_digest_sees_boxes():
    items = scenario_items(SyntheticScenario(), "day", 0, 2)
    moved = [LabelledImage(i.name, i.image, np.asarray(i.boxes) + 0.01, i.classes) for i in items]
    assert hash_items(items) == hash_items(scenario_items(SyntheticScenario(), "day", 0, 2))
    assert hash_items(items) != hash_items(moved)


def test_stage_refuses_no_images(tmp_path):
    with pytest.raises(ValueError, match="at least one labelled image"):
        train_stage("x.pt", [], TrainSpec(), LearningConfig(), tmp_path, CLASS_NAMES, "teacher")


@pytest.mark.integration
def test_a_narrowed_yaml_trains_once_with_real_ultralytics(tmp_path):
    """One epoch on 8 tiny frames: the scale override shapes the model, and the second call is a cache hit."""
    config = LearningConfig(imgsz=64, batch=8, cache_dir=tmp_path / "cache")
    spec = ModelSpec(yaml="yolo11n.yaml", scale=(0.33, 0.0625, 64))
    items = scenario_items(SyntheticScenario(), "day", 0, 8, "train-")
    calls: list = []

    def build(folder, work):
        calls.append(work)
        return {"m.pt": train_from_spec(spec, TrainSpec(epochs=1), config, {"train": items, "val": items[:2]},
                                        CLASS_NAMES, work)}

    folder = tmp_path / "cache" / cache_key({"spec": spec.model_dump(mode="json")}, hash_items(items))
    pt = cached_build(folder, ["m.pt"], build)["m.pt"]
    assert cached_build(folder, ["m.pt"], build)["m.pt"] == pt and len(calls) == 1

    from edge.training import ultralytics_yolo

    model = ultralytics_yolo()(str(pt)).model
    assert max(m.out_channels for m in model.modules() if hasattr(m, "out_channels")) <= 64


@pytest.mark.integration
def test_training_reports_each_epoch_with_losses_and_time_left(tmp_path):
    from edge.training_progress import report_training_to

    config = LearningConfig(imgsz=64, batch=8, cache_dir=tmp_path / "cache")
    spec = ModelSpec(yaml="yolo11n.yaml", scale=(0.33, 0.0625, 64))
    items = scenario_items(SyntheticScenario(), "day", 0, 8, "train-")
    lines: list[str] = []
    with report_training_to(lines.append):
        train_from_spec(spec, TrainSpec(epochs=2), config, {"train": items, "val": items[:2]}, CLASS_NAMES,
                        tmp_path / "work", label="teacher")
    train_from_spec(spec, TrainSpec(epochs=1), config, {"train": items, "val": items[:2]}, CLASS_NAMES,
                    tmp_path / "quiet")  # outside the block: nobody asked, nothing reported
    assert [line.split(",")[0] for line in lines] == ["teacher: epoch 1/2", "teacher: epoch 2/2"], lines
    assert all("loss box" in line and line.endswith("left") for line in lines), lines


@pytest.mark.integration
def test_the_nominal_batch_reaches_ultralytics(tmp_path):
    """LearningConfig.nominal_batch is ultralytics' nbs (a YOLO folder steps on every batch); unset, its own 64."""
    import yaml

    spec = ModelSpec(yaml="yolo11n.yaml", scale=(0.33, 0.0625, 64))
    items = scenario_items(SyntheticScenario(), "day", 0, 4, "train-")
    for nominal_batch, nbs in ((4, 4), (None, 64)):
        config = LearningConfig(imgsz=64, batch=4, nominal_batch=nominal_batch, cache_dir=tmp_path / "cache")
        work = tmp_path / f"nbs-{nbs}"
        train_from_spec(spec, TrainSpec(epochs=1), config, {"train": items, "val": items[:2]}, CLASS_NAMES, work)
        assert yaml.safe_load((work / "runs" / "m" / "args.yaml").read_text())["nbs"] == nbs
