"""The teacher's class logits on onnxruntime: the torch teacher's own logits, at any batch size, at a fraction of
its cost; the fused torch teacher stays frozen and scores as before."""

from __future__ import annotations

from types import SimpleNamespace

import onnx
import pytest
import torch
from onnx import TensorProto, helper

from edge.distill_model import EdgeDistillationModel, HeadDistillation, attach
from edge.learning_config import ModelSpec
from edge.teacher_scores import TeacherLogits, logits_graph, teacher_logits_onnx
from edge.training import model_source

TEACHER_PX = 128  # the tiny YOLO's training size: the teacher's view of a 64 px student batch at scale 2


def _torch_teacher(pt):
    from ultralytics.nn.tasks import load_checkpoint

    return load_checkpoint(str(pt))[0].float().eval()


def _torch_logits(teacher, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return teacher(images)[1]["scores"]  # eval mode: (decoded, raw head outputs)


def _distillation(tmp_path, teacher_pt) -> EdgeDistillationModel:
    from ultralytics.cfg import get_cfg
    from ultralytics.nn.distill_model import DistillationModel
    from ultralytics.nn.tasks import DetectionModel

    student = DetectionModel(model_source(ModelSpec(scale=(0.33, 0.125, 64)), tmp_path), nc=3, verbose=False)
    student.args = get_cfg(overrides={"imgsz": 64, "dis": 0.0})
    model = DistillationModel(str(teacher_pt), student)
    return EdgeDistillationModel.adopt(model, HeadDistillation(teacher_scale=2.0, logit_weight=1.0,
                                                               onnx_teacher=True)).train()


def test_the_onnx_cut_gives_the_torch_teachers_class_logits_at_any_batch_size(tmp_path, tiny_yolo_pt):
    cut = teacher_logits_onnx(tiny_yolo_pt, TEACHER_PX, tmp_path)
    teacher = TeacherLogits(cut)
    assert teacher.grids == [(16, 16), (8, 8), (4, 4)]
    torch.manual_seed(0)
    images = torch.rand(3, 3, TEACHER_PX, TEACHER_PX)  # odd, like a last batch
    expected = _torch_logits(_torch_teacher(tiny_yolo_pt), images)
    got = teacher(images)
    assert got.shape == expected.shape == (3, 3, 16 * 16 + 8 * 8 + 4 * 4)
    assert float((got - expected).abs().max()) < 1e-3
    assert float(expected.std()) > 0.5  # logits, not sigmoid scores
    with pytest.raises(ValueError, match="images"):
        teacher(torch.rand(2, 3, 64, 64))


def test_logits_graph_refuses_a_graph_that_is_not_a_detect_export():
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])])
    with pytest.raises(ValueError, match="Detect"):
        logits_graph(helper.make_model(graph))


def test_adopting_fuses_the_frozen_teacher_without_changing_its_scores(tmp_path, tiny_yolo_pt):
    model = _distillation(tmp_path, tiny_yolo_pt)
    assert model.teacher_model.is_fused() and not model.teacher_model.training
    assert not any(p.requires_grad for p in model.teacher_model.parameters())
    images = torch.rand(2, 3, TEACHER_PX, TEACHER_PX)
    unfused = _torch_logits(_torch_teacher(tiny_yolo_pt), images)
    assert float((_torch_logits(model.teacher_model, images) - unfused).abs().max()) < 1e-3


def test_logit_distillation_from_the_onnx_teacher_matches_the_torch_teacher(tmp_path, tiny_yolo_pt):
    torch.manual_seed(0)
    batch = {"img": torch.rand(3, 3, 64, 64), "batch_idx": torch.tensor([0.0, 2.0]),
             "cls": torch.tensor([[0.0], [1.0]]),
             "bboxes": torch.tensor([[0.5, 0.5, 0.3, 0.3], [0.3, 0.4, 0.2, 0.2]])}
    model = _distillation(tmp_path, tiny_yolo_pt)
    callbacks = []
    attach(SimpleNamespace(add_callback=lambda event, fn: callbacks.append(fn)), model.head)
    (adopt,) = callbacks
    torch_loss = model.loss(batch)[1]["dis_loss"]
    assert model._teacher_feats  # the torch teacher ran
    adopt(SimpleNamespace(model=model, args=SimpleNamespace(imgsz=64, distill_model=str(tiny_yolo_pt), multi_scale=0.0,
                                                            compile=False),
                          save_dir=tmp_path / "run", device=torch.device("cpu"), train_loader=[]))
    assert model.teacher_onnx is not None and onnx.load(model.teacher_onnx).graph.output[0].name
    onnx_loss = model.loss(batch)[1]["dis_loss"]
    assert not model._teacher_feats  # the torch teacher did not run
    assert float(torch_loss) > 0 and float(onnx_loss) == pytest.approx(float(torch_loss), rel=1e-4)
    model.dis = 1.0  # a feature term needs the torch teacher
    model.loss(batch)
    assert model._teacher_feats
