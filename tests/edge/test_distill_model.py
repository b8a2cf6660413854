"""Distillation with the teacher at its own scale: grids aligned by stride, head losses zero only on agreement."""

from __future__ import annotations

import pytest
import torch

from edge.distill_model import (EdgeDistillationModel, HeadDistillation, align_head, box_kd_loss, logit_kd_loss,
                                pick_by_confidence, teacher_view)
from edge import distill_model
from edge.distill import teacher_arguments
from edge.learning_config import LearningConfig, ModelSpec
from edge.training import model_source, ultralytics_yolo


def test_teacher_view_is_the_batch_at_the_teachers_input_size():
    images = torch.rand(2, 3, 128, 96)
    assert teacher_view(images, 2.0).shape == (2, 3, 256, 192)
    assert teacher_view(images, 1.0) is images


def test_teacher_head_is_pooled_to_the_students_grid_level_by_level():
    # a 2x teacher has grids 8, 4, 2 where the student has 4, 2, 1
    teacher_grids, student_grids = [(8, 8), (4, 4), (2, 2)], [(4, 4), (2, 2), (1, 1)]
    levels = [torch.randn(2, 3, h, w) for h, w in teacher_grids]
    aligned = align_head(torch.cat([level.flatten(2) for level in levels], -1), teacher_grids, student_grids)
    assert aligned.shape == (2, 3, 16 + 4 + 1)
    # each student cell holds the strongest of the 2x2 teacher cells it covers, on the same level
    assert torch.equal(aligned[..., :16], torch.nn.functional.max_pool2d(levels[0], 2).flatten(2))
    assert torch.equal(aligned[..., 20], levels[2].flatten(2).max(-1).values)
    # at 1x nothing moves
    same = torch.cat([level.flatten(2) for level in levels], -1)
    assert torch.equal(align_head(same, teacher_grids, teacher_grids), same)


def test_avg_pooling_reads_the_teacher_at_the_students_anchor_point():
    # one 2x teacher cell fires: max spreads it over the whole student cell, avg reads the four cells' mean there
    teacher = torch.full((1, 1, 4, 4), -8.0)
    teacher[0, 0, 0, 0] = 4.0
    aligned = {pool: align_head(teacher.flatten(2), [(4, 4)], [(2, 2)], pool) for pool in ("max", "avg")}
    assert aligned["max"].flatten().tolist() == [4.0, -8.0, -8.0, -8.0]
    assert aligned["avg"].flatten().tolist() == [-5.0, -8.0, -8.0, -8.0]
    with pytest.raises(ValueError, match="pool"):
        align_head(teacher.flatten(2), [(4, 4)], [(2, 2)], "median")


def test_the_learning_config_chooses_how_the_teacher_logits_are_pooled(tmp_path):
    config = LearningConfig(distill_logit_weight=1.0, distill_logit_pool="avg")
    head = teacher_arguments(tmp_path / "teacher.pt", config)["distill_head"]
    assert head.logit_pool == "avg" and head.teacher_scale == 2.0 and head.onnx_teacher
    assert teacher_arguments(tmp_path / "teacher.pt", LearningConfig(distill_logit_weight=1.0))[
        "distill_head"].logit_pool == "max"


def test_each_student_cell_takes_the_box_of_its_most_confident_teacher_cell():
    confidence = torch.zeros(1, 1, 16)
    confidence[0, 0, 5] = 0.9  # teacher cell (1, 1): inside student cell (0, 0) of a 2x2 grid
    confidence[0, 0, 15] = 0.4  # teacher cell (3, 3): inside student cell (1, 1)
    boxes = torch.arange(4 * 16, dtype=torch.float).view(1, 4, 16)
    picked, weights = pick_by_confidence(boxes, confidence, [(4, 4)], [(2, 2)])
    assert torch.equal(picked[0, :, 0], boxes[0, :, 5]) and torch.equal(picked[0, :, 3], boxes[0, :, 15])
    assert weights.flatten().tolist() == pytest.approx([0.9, 0.0, 0.0, 0.4])


def test_box_loss_rewards_the_teachers_box_and_ignores_anchors_it_does_not_cover():
    anchors, strides = torch.tensor([[0.5, 0.5], [3.5, 3.5]]), torch.ones(2, 1)
    teacher = torch.tensor([[[0.0, 2.0], [0.0, 2.0], [2.0, 3.0], [2.0, 3.0]]])  # (1, 4, 2): covers anchor 0 only
    on_target = torch.full((1, 4, 16, 2), -10.0)
    on_target[0, :2, 0:2, 0] = 10.0  # ltrb (0.5, 0.5, 1.5, 1.5): half in each of the two nearest bins
    on_target[0, 2:, 1:3, 0] = 10.0
    weights = torch.tensor([[1.0, 1.0]])
    good = box_kd_loss(on_target.view(1, 64, 2), anchors, strides, teacher, weights)
    bad = box_kd_loss(torch.randn(1, 64, 2), anchors, strides, teacher, weights)
    assert float(good) < float(bad)
    assert float(box_kd_loss(torch.randn(1, 64, 2), anchors, strides, teacher, torch.zeros(1, 2))) == 0
    moved = on_target.clone()
    moved[..., 1] = torch.randn(1, 4, 16)  # anchor 1 lies outside its teacher box: it must not count
    assert float(box_kd_loss(moved.view(1, 64, 2), anchors, strides, teacher, weights)) == pytest.approx(float(good))


def test_logit_loss_is_zero_when_the_student_agrees_and_pulls_it_towards_the_teacher():
    teacher = torch.randn(2, 3, 21) * 3
    for temperature in (1.0, 2.0):
        assert abs(float(logit_kd_loss(teacher.clone(), teacher, temperature))) < 1e-5
    student = torch.zeros_like(teacher, requires_grad=True)
    loss = logit_kd_loss(student, teacher, 2.0)
    loss.backward()
    assert float(loss.detach()) > 0
    # a gradient step moves each student logit towards the teacher's
    assert bool(((-student.grad).sign() == teacher.sign()).all())


def _wrapped(tmp_path, head: HeadDistillation) -> EdgeDistillationModel:
    from ultralytics.cfg import get_cfg
    from ultralytics.nn.distill_model import DistillationModel

    config = LearningConfig(cache_dir=tmp_path)
    yolo = ultralytics_yolo()
    teacher = yolo(model_source(ModelSpec(scale=(0.33, 0.25, 64)), tmp_path)).model
    student = yolo(model_source(ModelSpec(scale=(0.33, 0.125, 64)), tmp_path)).model
    student.args = get_cfg(overrides={"imgsz": 64, "dis": 0.0})
    teacher.nc = student.nc = 3
    return EdgeDistillationModel.adopt(DistillationModel(teacher, student), head).train()


def test_the_real_teacher_runs_at_its_scale_and_the_head_terms_add_to_the_loss(tmp_path, monkeypatch):
    torch.manual_seed(0)
    batch = {"img": torch.rand(2, 3, 64, 64), "batch_idx": torch.tensor([0.0, 1.0]),
             "cls": torch.tensor([[0.0], [1.0]]),
             "bboxes": torch.tensor([[0.5, 0.5, 0.3, 0.3], [0.3, 0.4, 0.2, 0.2]])}
    model = _wrapped(tmp_path, HeadDistillation(teacher_scale=2.0, logit_weight=1.0))
    loss, items = model.loss(batch)
    # the teacher's features were taken on the 128 px view: each level twice the student's grid
    for level in range(len(model.feats_idx) - 1):
        assert model._teacher_feats[level].shape[-1] == 2 * model._student_feats[level].shape[-1]
    assert float(items["dis_loss"]) > 0 and torch.isfinite(loss).all()
    pools = []  # a fresh teacher scores every cell alike, so the pooling shows in what align_head is asked
    with monkeypatch.context() as patch:
        patch.setattr(distill_model, "align_head", lambda *args: pools.append(args[-1]) or align_head(*args))
        model.head = HeadDistillation(teacher_scale=2.0, logit_weight=1.0, logit_pool="avg")
        assert float(model.loss(batch)[1]["dis_loss"]) > 0 and pools == ["avg"]
    model.head = HeadDistillation(teacher_scale=2.0, box_weight=1.0)
    assert float(model.loss(batch)[1]["dis_loss"]) > 0
    model.head = HeadDistillation(teacher_scale=2.0)  # every head weight 0, feature weight 0: labels only
    _, items = model.loss(batch)
    assert float(items["dis_loss"]) == 0


def test_every_nth_batch_alone_pays_for_the_teacher(tmp_path):
    torch.manual_seed(0)
    batch = {"img": torch.rand(2, 3, 64, 64), "batch_idx": torch.tensor([0.0, 1.0]),
             "cls": torch.tensor([[0.0], [1.0]]),
             "bboxes": torch.tensor([[0.5, 0.5, 0.3, 0.3], [0.3, 0.4, 0.2, 0.2]])}
    model = _wrapped(tmp_path, HeadDistillation(teacher_scale=2.0, logit_weight=1.0, every_batches=2))
    seen = []
    for _ in range(4):
        loss, items = model.loss(batch)
        seen.append((bool(model._teacher_feats), float(items["dis_loss"]) > 0, float(loss[-1]) > 0))
    assert seen == [(True, True, True), (False, False, False)] * 2
    with pytest.raises(ValueError, match="settings"):
        HeadDistillation(every_batches=0)
    config = LearningConfig(distill_logit_weight=1.0, distill_every_batches=3)
    assert teacher_arguments(tmp_path / "teacher.pt", config)["distill_head"].every_batches == 3
