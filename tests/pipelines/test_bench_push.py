"""``edgeloop bench push`` on tiny settings: one sparse fraction and the dense push, measured end to end."""

from __future__ import annotations

import pytest

from edge.learning_config import LearningConfig, TrainSpec
from pipelines.bench_push import PushBenchSettings, measure_pushes, table, verdict

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_bench_push_measures_a_sparse_and_a_dense_push(tmp_path, tiny_yolo):
    config = LearningConfig(imgsz=tiny_yolo.imgsz, batch=16, finetune=TrainSpec(epochs=1),
                            distill=TrainSpec(epochs=2, warmup_epochs=0), bootstrap_train_frames=16,
                            calibration_frames=4, sparse_selection_batches=1,
                            cache_dir=tmp_path / "cache", work_dir=tmp_path / "work")
    settings = PushBenchSettings(fractions=(0.05,), frames=16, eval_frames=8, variants=False)
    rows = {r.name: r for r in measure_pushes(config, tiny_yolo.pt, tiny_yolo.pt, settings, tmp_path)}
    assert list(rows) == ["skip (parent)", "5 %", "full"]
    skip, sparse, dense = rows["skip (parent)"], rows["5 %"], rows["full"]
    assert skip.push_bytes == skip.int8_changed_bytes == 0
    assert all(0 < r.push_bytes < r.full_int8_bytes for r in (sparse, dense))
    # the sparse student keeps most of its parent's INT8 weights; a dense retrain moves most of them
    assert sparse.int8_changed_bytes < dense.int8_changed_bytes
    assert len(verdict(list(rows.values()))) == 2 and table(list(rows.values())).row_count == 3
