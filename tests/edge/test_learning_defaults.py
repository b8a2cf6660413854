"""The default teacher and student: a teacher larger than the student, and distillable into it."""

from __future__ import annotations

from edge.learning_config import LearningConfig, ModelSpec
from edge.training import model_source, ultralytics_yolo

def _built(spec: ModelSpec, cache_dir):
    return ultralytics_yolo()(model_source(spec, cache_dir)).model


def _detect_levels(model) -> int:
    from ultralytics.nn.modules import Detect

    return next(len(m.f) for m in model.model if isinstance(m, Detect))


def test_default_teacher_is_larger_than_the_student_and_has_the_same_levels(tmp_path):
    config = LearningConfig(cache_dir=tmp_path)
    teacher, student = _built(config.teacher, tmp_path), _built(config.student, tmp_path)
    teacher_params = sum(p.numel() for p in teacher.parameters())
    student_params = sum(p.numel() for p in student.parameters())
    assert teacher_params > student_params, (teacher_params, student_params)
    assert config.teacher_size() >= config.imgsz  # the teacher sees at least the student's detail
    # ultralytics' distillation pairs the Detect inputs level by level
    assert _detect_levels(teacher) == _detect_levels(student)


def test_teacher_size_follows_the_students_in_multiples_of_32():
    assert LearningConfig(teacher_input_scale=1, imgsz=96).teacher_size() == 96
    assert LearningConfig(teacher_input_scale=2, imgsz=96).teacher_size() == 192
    assert LearningConfig(teacher_input_scale=1.1, imgsz=320).teacher_size() == 352
