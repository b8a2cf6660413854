"""``edgeloop bench distill`` on tiny settings: every variant trains and is scored; the teacher at its own size."""

from __future__ import annotations

import logging

import torch

from edge.learning_config import LearningConfig, ModelSpec, TrainSpec
from pipelines.bench_distill import LABEL_ONLY, distill_ablation, distilled_name, verdict


def test_tiny_ablation_trains_each_variant_and_distills_across_input_sizes(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="edge.distill_model")
    one_epoch = TrainSpec(epochs=1, lr0=0.01, warmup_epochs=0)
    config = LearningConfig(
        teacher=ModelSpec(scale=(0.33, 0.25, 64)), student=ModelSpec(scale=(0.33, 0.125, 64)),
        imgsz=64, teacher_input_scale=1.5, batch=3, bootstrap=one_epoch, finetune=one_epoch, distill=one_epoch,
        bootstrap_train_frames=6, bootstrap_val_frames=2, cache_dir=tmp_path / "cache")
    rows, times = distill_ablation(config, frames=6, weights=[2.0], work=tmp_path / "work", say=lambda line: None)
    variants = [r.variant for r in rows]
    assert variants == ["student before the drift", "teacher before the drift", "teacher (fine-tuned)", LABEL_ONLY,
                        distilled_name(config, 2.0)]
    assert all(0.0 <= r.new_map <= 1.0 and 0.0 <= r.old_map <= 1.0 for r in rows)
    assert times["bootstrap_cached"] == 0.0 and len(verdict(rows)) == 2
    # the teacher trained (bootstrap and fine-tune) at its own size; the students at theirs, distilled or not
    train_args = {path.parents[3].name: torch.load(path, weights_only=False)["train_args"]["imgsz"]
                  for path in (tmp_path / "work").glob("*/runs/*/weights/last.pt")}
    assert train_args == {"teacher": 96, "student-0": 64, "student-1": 64}
    # every student variant trained on the same images (the same replay draw)
    trained = [sorted(p.name for p in (tmp_path / "work" / f"student-{i}" / "student-data" / "images" / "train")
                      .iterdir()) for i in (0, 1)]
    assert trained[0] == trained[1]
    # the distilled student's teacher ran on its own 96 px view of the 64 px batches
    assert "distilling at teacher scale 1.5" in caplog.text
