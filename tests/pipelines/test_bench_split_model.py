"""``bench split``'s model goes through the one cached build: keyed by settings and data, reused when present."""

from __future__ import annotations

from dataclasses import replace

from edge.training import hash_items
from edge.yolo_dataset import scenario_items
from endpoint.sources.scenario import SyntheticScenario
from pipelines.bench_split import BenchSplitSettings, bench_model


def bench_folder(cache_dir, settings: BenchSplitSettings):
    scenario = SyntheticScenario(seed=settings.seed)
    items = [*scenario_items(scenario, "day", 0, settings.train_frames, "train-"),
             *scenario_items(scenario, "day", 200_000, 8, "val-")]
    return cache_dir / settings.key(hash_items(items))


def test_a_cached_model_is_reused_without_training(tmp_path):
    settings = BenchSplitSettings(train_frames=4)
    folder = bench_folder(tmp_path, settings)
    folder.mkdir(parents=True)
    (folder / "model.pt").write_bytes(b"weights")  # a build would need ultralytics training; a hit must not
    assert bench_model(settings, tmp_path) == folder / "model.pt"
    assert (tmp_path / f"{folder.name}.lock").exists()


def test_the_key_follows_training_settings_only():
    settings = BenchSplitSettings()
    assert settings.key("d") == replace(settings, jpeg_quality=50, rtt_ms=9.0).key("d")  # measurement knobs
    assert settings.key("d") != replace(settings, epochs=11).key("d") != settings.key("e")
