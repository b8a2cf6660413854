"""A sparse round trains at the distill stage's learning rate times ``sparse_lr_scale``; a dense one at lr0."""

from __future__ import annotations

from pathlib import Path

import edge.distill as distill
from edge.learning_config import LearningConfig
from edge.sparse_update import SparseUpdate
from edge.training import StageRun


def test_sparse_rounds_scale_the_learning_rate_and_dense_rounds_do_not(monkeypatch, tmp_path):
    seen = []

    def fake_stage(start, items, stage, config, run_dir, names, label, **kw):
        seen.append((stage.lr0, kw.get("sparse")))
        return StageRun(Path(run_dir) / "student.pt", len(items), 0.0)

    monkeypatch.setattr(distill, "train_stage", fake_stage)
    config = LearningConfig(sparse_lr_scale=3.0, work_dir=tmp_path)
    sparse = SparseUpdate(0.05)
    distill.distill_student("s.pt", "t.pt", [], config, tmp_path / "d", ["a"])
    distill.distill_student("s.pt", "t.pt", [], config, tmp_path / "s", ["a"], sparse=sparse)
    assert seen == [(config.distill.lr0, None), (config.distill.lr0 * 3.0, sparse)]
