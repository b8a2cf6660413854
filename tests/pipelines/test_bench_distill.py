"""``edgeloop bench distill`` on tiny settings: every variant trains and is scored; the teacher at its own size."""

from __future__ import annotations

import logging
import math
import re

import pytest
import torch

from edge.learning_config import LearningConfig, ModelSpec, TrainSpec
from pipelines.bench_distill import (LABEL_ONLY, LABEL_ONLY_FIXED, LABEL_ONLY_SAME_TIME, SAME_TIME, NoPseudoLabels, Row,
                                     distill_ablation, distilled_name, epoch_seconds, gains, same_time_epochs,
                                     training_seeds, verdict)


def test_tiny_ablation_trains_each_variant_and_distills_across_input_sizes(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="edge.distill_model")
    one_epoch = TrainSpec(epochs=1, lr0=0.01, warmup_epochs=0)
    config = LearningConfig(
        teacher=ModelSpec(scale=(0.33, 0.25, 64)), student=ModelSpec(scale=(0.33, 0.125, 64)),
        imgsz=64, teacher_input_scale=1.5, batch=3, bootstrap=one_epoch, finetune=one_epoch, distill=one_epoch,
        bootstrap_train_frames=6, bootstrap_val_frames=2, cache_dir=tmp_path / "cache")
    rows, times = distill_ablation(config, frames=6, weights=[2.0], work=tmp_path / "work", say=lambda line: None,
                                   seeds=[0, 1])
    variants = [(r.variant, r.seed) for r in rows]
    distilled = distilled_name(config, 2.0)
    assert variants == [("student before the drift", None), ("teacher before the drift", None),
                        ("teacher (fine-tuned)", None), (LABEL_ONLY, 0), (distilled, 0), (LABEL_ONLY_SAME_TIME, 0),
                        (LABEL_ONLY, 1), (distilled, 1), (LABEL_ONLY_SAME_TIME, 1)]
    assert all(0.0 <= r.new_map <= 1.0 and 0.0 <= r.old_map <= 1.0 for r in rows)
    assert times["bootstrap_cached"] == 0.0 and len(verdict(rows)) == 3
    assert [sorted(g.by_seed) for g in gains(rows)] == [[0, 1]]
    assert [sorted(g.by_seed) for g in gains(rows, LABEL_ONLY_SAME_TIME)] == [[0, 1]]
    # the same-time student trained for the epochs its own pace fits into the distilled student's time
    for seed in (0, 1):
        labels, taught, same = (next(r for r in rows if r.variant == v and r.seed == seed)
                                for v in (LABEL_ONLY, distilled, LABEL_ONLY_SAME_TIME))
        assert same.epochs == same_time_epochs(labels, taught.steady_s)
        assert len(labels.epoch_times_s) == labels.epochs and len(same.epoch_times_s) == same.epochs
    # the teacher trained (bootstrap and fine-tune) at its own size; the students at theirs, distilled or not;
    # each student with its own training seed
    train_args = {path.parents[3].name: torch.load(path, weights_only=False)["train_args"]
                  for path in (tmp_path / "work").glob("*/runs/*/weights/last.pt")}
    assert {name: args["imgsz"] for name, args in train_args.items()} == {
        "teacher": 96, "student-0-seed-0": 64, "student-1-seed-0": 64, "student-0-seed-1": 64, "student-1-seed-1": 64,
        "student-same-time-seed-0": 64, "student-same-time-seed-1": 64}
    assert train_args["student-same-time-seed-0"]["epochs"] == rows[5].epochs
    assert [train_args[f"student-{i}-seed-1"]["seed"] for i in (0, 1)] == [1, 1]
    # every student variant and seed trained on the same images (the same replay draw)
    trained = [sorted(p.name for p in (tmp_path / "work" / f"student-{i}-seed-{s}" / "student-data" / "images" /
                                       "train").iterdir()) for i in (0, 1, "same-time") for s in (0, 1)]
    assert all(t == trained[0] for t in trained)
    # the distilled student's teacher ran on its own 96 px view of the 64 px batches
    assert "distilling at teacher scale 1.5" in caplog.text


def test_tiny_ablation_without_ground_truth_trains_on_the_teachers_pseudo_labels(tmp_path):
    """--labels teacher: the students' drift frames carry the fine-tuned teacher's boxes, those without any left out."""
    one_epoch = TrainSpec(epochs=1, lr0=0.01, warmup_epochs=0)
    config = LearningConfig(
        teacher=ModelSpec(scale=(0.33, 0.25, 64)), student=ModelSpec(scale=(0.33, 0.125, 64)),
        imgsz=64, teacher_input_scale=1.5, batch=3, bootstrap=one_epoch, finetune=one_epoch, distill=one_epoch,
        bootstrap_train_frames=6, bootstrap_val_frames=2, cache_dir=tmp_path / "cache", teacher_label_conf=0.002,
        distill_logit_weight=1.0)
    said = []
    rows, _ = distill_ablation(config, frames=8, weights=[0.0], work=tmp_path / "work", say=said.append, seeds=[0],
                               labels="teacher")
    assert [r.variant for r in rows][-5:] == [LABEL_ONLY, LABEL_ONLY_FIXED, distilled_name(config, 0.0),
                                              LABEL_ONLY_SAME_TIME, LABEL_ONLY_FIXED + SAME_TIME]
    counts = {}
    for line in said:
        match = re.match(r"pseudo-labels of (.*): (\d+) of 8 frames .* (\d+) boxes against (\d+) in ground truth", line)
        if match:
            counts[match[1]] = tuple(int(g) for g in match.groups()[1:])
    assert set(counts) == {"the pre-drift teacher", "the fine-tuned teacher"}
    frames, boxes, truth = counts["the fine-tuned teacher"]
    assert 0 < frames and boxes != truth  # the teacher's boxes, not the ground truth's
    for student in ("student-0-seed-0", "student-1-seed-0", "student-2-seed-0", "student-same-time-seed-0",
                    "student-same-time-1-seed-0"):
        labels = tmp_path / "work" / student / "student-data" / "labels" / "train"
        drift = [path for path in labels.iterdir() if "-up-" in path.name]
        assert len(drift) == frames
        assert sum(len(path.read_text().splitlines()) for path in drift) == boxes
    with pytest.raises(ValueError, match="labels is one of"):
        distill_ablation(config, frames=8, weights=[0.0], work=tmp_path / "bad", labels="teachers")
    strict = config.model_copy(update={"teacher_label_conf": 0.999})  # a clear error, not a crash in training
    with pytest.raises(NoPseudoLabels, match="the pre-drift teacher labelled none of the drift frames"):
        distill_ablation(strict, frames=8, weights=[0.0], work=tmp_path / "strict", say=said.append, labels="teacher")


def test_tiny_ablation_with_a_cached_teacher_compares_with_label_only_students_in_both_geometries(tmp_path, caplog):
    """The cached teacher's students keep each image's geometry: a label-only student in that geometry joins the
    default one, at the same epochs and the same wall time; the teacher ran once per training image."""
    caplog.set_level(logging.INFO, logger="edge.distill_model")
    one_epoch, two_epochs = (TrainSpec(epochs=n, lr0=0.01, warmup_epochs=0) for n in (1, 2))
    config = LearningConfig(
        teacher=ModelSpec(scale=(0.33, 0.25, 64)), student=ModelSpec(scale=(0.33, 0.125, 64)),
        imgsz=64, teacher_input_scale=1.5, batch=3, bootstrap=one_epoch, finetune=one_epoch, distill=two_epochs,
        bootstrap_train_frames=6, bootstrap_val_frames=2, cache_dir=tmp_path / "cache", distill_logit_weight=1.0,
        distill_cached_teacher=True)
    rows, _ = distill_ablation(config, frames=6, weights=[0.0], work=tmp_path / "work", say=lambda line: None,
                               seeds=[0])
    distilled = distilled_name(config, 0.0)
    assert [r.variant for r in rows][3:] == [LABEL_ONLY, LABEL_ONLY_FIXED, distilled, LABEL_ONLY_SAME_TIME,
                                             LABEL_ONLY_FIXED + SAME_TIME]
    assert len(verdict(rows)) == 5  # the teacher, then each label-only student at the same epochs and wall time
    train_args = {path.parents[3].name: torch.load(path, weights_only=False)["train_args"]
                  for path in (tmp_path / "work").glob("student*/runs/*/weights/last.pt")}
    moving = {name for name, args in train_args.items() if args["mosaic"] or args["fliplr"] or args["scale"]}
    assert moving == {"student-0-seed-0", "student-same-time-seed-0"}
    images = len(list((tmp_path / "work" / "student-2-seed-0" / "student-data" / "images" / "train").iterdir()))
    assert f"cached teacher: {images} teacher passes, {images} images served from the cache" in caplog.text
    # the box term needs the teacher on every batch: no cache, and the default geometry
    from edge.distill import teacher_arguments

    boxes = teacher_arguments(tmp_path / "teacher.pt", config.model_copy(update={"distill_box_weight": 1.0}))
    assert not boxes["distill_head"].cached_teacher and "mosaic" not in boxes


def _rows(label_only: dict[int, float], distilled: dict[int, float]) -> list[Row]:
    rows = [Row("teacher (fine-tuned)", 0.5, 0.4, 1.0)]
    rows += [Row(LABEL_ONLY, m, 0.3, 1.0, seed=s) for s, m in label_only.items()]
    return rows + [Row("distilled, x", m, 0.3, 1.0, seed=s) for s, m in distilled.items()]


def test_gains_pair_each_distilled_student_with_the_label_only_one_of_its_seed():
    rows = _rows({0: 0.20, 1: 0.30, 2: 0.25}, {2: 0.28, 0: 0.21, 1: 0.29})  # seeds in another order
    (gain,) = gains(rows)
    assert gain.by_seed == pytest.approx({0: 1.0, 1: -1.0, 2: 3.0})
    assert gain.mean == pytest.approx(1.0) and gain.std == pytest.approx(2.0)  # sample std of 1, -1, 3
    lines = verdict(rows)
    assert "+1.0 pts mean, std 2.0, over 3 training seed(s)" in lines[1]
    assert lines[0].startswith("teacher / label-only student (mean over seeds): 2.00x")  # 0.5 / mean 0.25


def test_one_seed_has_no_spread_and_a_seed_without_its_baseline_is_an_error():
    (gain,) = gains(_rows({0: 0.2}, {0: 0.25}))
    assert gain.mean == pytest.approx(5.0) and math.isnan(gain.std)
    with pytest.raises(ValueError, match="seed 1"):
        gains(_rows({0: 0.2}, {1: 0.25}))


def test_seeds_option_is_a_count_from_the_scenario_seed_or_a_list():
    assert training_seeds(None, 4) == [4]
    assert training_seeds("3", 4) == [4, 5, 6]
    assert training_seeds("0,2,7", 4) == [0, 2, 7]
    for bad in ("0", "x", "1,1", "1,a"):
        with pytest.raises(ValueError, match="--seeds"):
            training_seeds(bad, 0)


def test_the_same_time_student_trains_the_epochs_its_own_pace_fits_into_the_distilled_time():
    labels = Row(LABEL_ONLY, 0.2, 0.3, train_s=20.0, seed=0, epochs=7)  # about 2.9 s an epoch
    assert same_time_epochs(labels, 30.0) == 10
    assert same_time_epochs(labels, 20.0) == 7
    assert same_time_epochs(labels, 0.5) == 1  # at least one epoch
    with pytest.raises(ValueError, match="pace"):
        same_time_epochs(Row(LABEL_ONLY, 0.2, 0.3, train_s=20.0, seed=0), 30.0)


def test_a_stalled_epoch_does_not_move_the_same_time_pacing(tmp_path):
    """One epoch slowed by another process: paced at the median epoch, with the time outside the epochs kept."""
    (tmp_path / "results.csv").write_text("epoch,time,train/box_loss\n1,1.5,2.0\n2,2.5,1.9\n3,42.5,1.8\n4,43.5,1.7\n")
    times = epoch_seconds(tmp_path / "results.csv")
    assert times == pytest.approx((1.5, 1.0, 40.0, 1.0))
    # 4 epochs in 45.5 s: 2 s outside them (data, model, final checks); a typical epoch 1.25 s
    stalled = Row(LABEL_ONLY, 0.2, 0.3, train_s=45.5, seed=0, epochs=4, epoch_times_s=times)
    assert stalled.epoch_s == pytest.approx(1.25) and stalled.steady_s == pytest.approx(7.0)
    assert same_time_epochs(stalled, 12.0) == 8  # (12 - 2) / 1.25, not 12 / (45.5 / 4) = 1
    assert same_time_epochs(stalled, stalled.steady_s) == 4
    assert epoch_seconds(tmp_path / "missing.csv") == ()  # said in a warning; the whole run's pace instead


def test_the_verdict_compares_at_the_same_epochs_and_at_the_same_wall_time():
    rows = _rows({0: 0.20, 1: 0.30}, {0: 0.24, 1: 0.31})
    rows += [Row(LABEL_ONLY_SAME_TIME, m, 0.3, 1.0, seed=s) for s, m in {0: 0.22, 1: 0.32}.items()]
    lines = verdict(rows)
    assert "at the same epochs: +2.5 pts mean" in lines[1]
    assert "at the same wall time: +0.5 pts mean" in lines[2]
