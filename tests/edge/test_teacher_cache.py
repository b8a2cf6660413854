"""The cached teacher: one pass per image, the same logits after, and no training that moves its images."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from edge.teacher_cache import FIXED_GEOMETRY, TeacherLogitCache, geometry_changes


class CountingTeacher:
    """Logits that identify the image (its mean), counting the images it ran on."""

    def __init__(self):
        self.images = 0

    def __call__(self, view: torch.Tensor) -> torch.Tensor:
        self.images += len(view)
        return view.mean(dim=(1, 2, 3)).reshape(-1, 1, 1).expand(-1, 2, 5).clone()


def _batch(values: list[float]) -> torch.Tensor:
    return torch.tensor(values).reshape(-1, 1, 1, 1).expand(-1, 3, 4, 4).clone()


def test_each_image_runs_the_teacher_once_and_later_batches_get_its_logits():
    teacher = CountingTeacher()
    cache = TeacherLogitCache(teacher, lambda images: images, limit=10)
    first = cache(["a.jpg", "b.jpg"], _batch([0.1, 0.2]))
    assert first.shape == (2, 2, 5) and teacher.images == 2
    # later: b again (new colours: the first colours' logits stay), c is new, and a duplicate in the batch
    later = cache(["b.jpg", "c.jpg", "c.jpg"], _batch([0.9, 0.3, 0.3]))
    assert teacher.images == 4 and cache.passes == 3 and cache.reused == 1
    assert later[:, 0, 0].tolist() == pytest.approx([0.2, 0.3, 0.3])
    # the same file at another size is another image
    cache(["a.jpg"], torch.zeros(1, 3, 8, 8))
    assert teacher.images == 5


def test_beyond_its_limit_an_image_is_scored_each_time_and_nothing_else_is_lost():
    teacher = CountingTeacher()
    cache = TeacherLogitCache(teacher, lambda images: images, limit=1)
    cache(["a.jpg", "b.jpg"], _batch([0.1, 0.2]))
    out = cache(["a.jpg", "b.jpg"], _batch([0.1, 0.2]))
    assert teacher.images == 3 and len(cache.logits) == 1
    assert out[:, 0, 0].tolist() == pytest.approx([0.1, 0.2])
    with pytest.raises(ValueError, match="at least one image"):
        TeacherLogitCache(teacher, lambda images: images, limit=0)
    # bounded by bytes too: each image's logits here are 2 x 5 float32, 40 bytes
    small = TeacherLogitCache(teacher, lambda images: images, limit=10, max_bytes=100)
    small(["a.jpg", "b.jpg", "c.jpg"], _batch([0.1, 0.2, 0.3]))
    assert len(small.logits) == 2 and small.bytes == 80
    with pytest.raises(ValueError, match="2 file names for 1 images"):
        cache(["a.jpg", "b.jpg"], _batch([0.1]))


def test_a_training_that_moves_its_images_is_named_by_its_arguments():
    defaults = SimpleNamespace(mosaic=1.0, fliplr=0.5, scale=0.5, translate=0.1, degrees=0.0, multi_scale=0.0)
    assert geometry_changes(defaults) == ["mosaic=1.0", "translate=0.1", "scale=0.5", "fliplr=0.5"]
    assert geometry_changes(SimpleNamespace(**{**vars(defaults), **FIXED_GEOMETRY})) == []


def test_the_trainer_refuses_a_cached_teacher_for_a_training_that_moves_its_images():
    from edge.distill_model import cache_teacher

    trainer = SimpleNamespace(args=SimpleNamespace(mosaic=1.0, fliplr=0.5, scale=0.0))
    with pytest.raises(ValueError, match="same geometry every epoch; the training has mosaic=1.0, fliplr=0.5"):
        cache_teacher(trainer, model=None)
