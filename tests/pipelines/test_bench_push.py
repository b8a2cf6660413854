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
    settings = PushBenchSettings(fractions=(0.05,), frames=16, eval_frames=8)
    rows = measure_pushes(config, tiny_yolo.pt, tiny_yolo.pt, settings, tmp_path)
    sparse, dense = rows
    assert (sparse.fraction, dense.fraction) == (0.05, None)
    assert all(r.push_bytes > 0 and r.full_int8_bytes > r.push_bytes for r in rows)
    # the sparse student on its parent's grid changes fewer INT8 bytes than a dense retrain, recalibrated
    assert sparse.int8_changed_bytes + sparse.other_changed_bytes < dense.int8_changed_bytes + dense.other_changed_bytes
    assert len(verdict(rows)) == 2 and table(rows).row_count == 2
