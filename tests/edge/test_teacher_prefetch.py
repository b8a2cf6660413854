"""The teacher's logits computed a batch ahead on a worker thread: the loss's own logits for its own batch, the same
loss as the sequential path, and no thread left behind when training ends."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest
import torch

from edge.distill_model import EdgeDistillationModel, HeadDistillation, attach, teacher_view
from edge.learning_config import LearningConfig, ModelSpec, TrainSpec
from edge.teacher_prefetch import THREAD_NAME, TeacherPrefetch
from edge.training import model_source


class Loader(list):
    """A training loader's batches, with an attribute of its own like ultralytics' ``dataset``."""

    dataset = "frames"


def _batches(count: int, size: int = 64, images: int = 2) -> Loader:
    """Loader batches as ultralytics' collate makes them: uint8 images and their labels, each batch different."""
    generator = torch.Generator().manual_seed(0)
    return Loader({"img": torch.randint(0, 256, (images, 3, size, size), dtype=torch.uint8, generator=generator),
             "batch_idx": torch.tensor([0.0, 1.0]), "cls": torch.tensor([[0.0], [1.0]]),
             "bboxes": torch.tensor([[0.5, 0.5, 0.3, 0.3], [0.3, 0.4, 0.2, 0.2]])} for _ in range(count))


def _preprocess(batch: dict) -> dict:
    """ultralytics' ``DetectionTrainer.preprocess_batch`` on the CPU without multi-scale."""
    batch["img"] = batch["img"].float() / 255
    return batch


def _prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(THREAD_NAME)]


class FakeTeacher:
    """Logits that name the images they came from; records which thread ran it and on what."""

    def __init__(self):
        self.seen: list[torch.Tensor] = []
        self.threads: set[str] = set()

    def __call__(self, view: torch.Tensor) -> torch.Tensor:
        self.seen.append(view)
        self.threads.add(threading.current_thread().name)
        return view.mean(dim=(2, 3))


def test_each_batch_gets_its_own_logits_from_one_batch_ahead_on_a_worker_thread():
    batches = _batches(5)
    teacher = FakeTeacher()
    views = []
    prefetch = TeacherPrefetch(batches, teacher, lambda images: views.append(images) or teacher_view(images, 2.0))
    assert len(prefetch) == 5 and prefetch.dataset == "frames"  # the wrapped loader's attributes
    for k, batch in enumerate(prefetch):
        assert batch is batches[k]
        assert len(views) == min(k + 2, 5)  # this batch and the next submitted: one ahead, not more
        assert len(prefetch.pending) <= 2
        batch = _preprocess(batch)
        expected = teacher_view(batch["img"], 2.0).mean(dim=(2, 3))
        assert torch.equal(prefetch.take(batch), expected)
    assert teacher.threads and all(name.startswith(THREAD_NAME) for name in teacher.threads)
    assert (prefetch.overlapped, prefetch.missed) == (5, 0)
    assert _prefetch_threads()
    prefetch.close()
    assert not _prefetch_threads()
    assert prefetch.take(_preprocess(_batches(1)[0])) is None  # closed: the loss runs the teacher itself


def test_skipped_batches_cost_no_teacher_pass_and_changed_images_get_none():
    batches = _batches(6)
    teacher = FakeTeacher()
    prefetch = TeacherPrefetch(batches, teacher, lambda images: images, wanted=lambda n: n % 3 == 0)
    taken = []
    for k, batch in enumerate(prefetch):
        batch = _preprocess(batch)
        if k % 3 == 0:
            taken.append(prefetch.take(batch))
    prefetch.close()
    assert len(teacher.seen) == 2 and all(t is not None for t in taken)
    # a trainer that resized the batch after loading (multi-scale) gets no logits of other images
    prefetch = TeacherPrefetch(_batches(2), FakeTeacher(), lambda images: images)
    for batch in prefetch:
        batch["img"] = torch.nn.functional.interpolate(_preprocess(batch)["img"], size=(32, 32))
        assert prefetch.take(batch) is None
    assert prefetch.missed == 2
    prefetch.close()


def _distillation(tmp_path, teacher_pt) -> EdgeDistillationModel:
    from ultralytics.cfg import get_cfg
    from ultralytics.nn.distill_model import DistillationModel
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(0)
    student = DetectionModel(model_source(ModelSpec(scale=(0.33, 0.125, 64)), tmp_path), nc=3, verbose=False)
    student.args = get_cfg(overrides={"imgsz": 64, "dis": 0.0})
    return EdgeDistillationModel.adopt(DistillationModel(str(teacher_pt), student),
                                       HeadDistillation(teacher_scale=2.0, logit_weight=1.0, onnx_teacher=True)).train()


def test_the_loss_of_each_batch_is_the_sequential_paths_with_the_prefetch(tmp_path, tiny_yolo_pt):
    model = _distillation(tmp_path, tiny_yolo_pt)
    callbacks = []
    attach(SimpleNamespace(add_callback=lambda event, fn: callbacks.append(fn)), model.head)
    trainer = SimpleNamespace(model=model, train_loader=_batches(4), save_dir=tmp_path / "run",
                              device=torch.device("cpu"),
                              args=SimpleNamespace(imgsz=64, distill_model=str(tiny_yolo_pt), multi_scale=0.0,
                                                   compile=False))
    (adopt,) = callbacks
    adopt(trainer)
    prefetch = trainer.train_loader
    assert isinstance(prefetch, TeacherPrefetch) and model.teacher_prefetch is prefetch
    sequential = []
    for batch in _batches(4):  # the same batches, the teacher run in the loss
        model.teacher_prefetch = None
        sequential.append(model.loss(_preprocess(batch))[0])
    model.teacher_prefetch = prefetch
    overlapped = [model.loss(_preprocess(batch))[0] for batch in prefetch]
    prefetch.close()
    assert (prefetch.overlapped, prefetch.missed) == (4, 0)
    assert all(float(loss[-1].detach()) > 0 for loss in sequential)  # the distillation term counts
    assert len({float(loss[-1].detach()) for loss in sequential}) == 4  # each batch's own: another's logits would show
    for got, expected in zip(overlapped, sequential):
        assert torch.equal(got, expected)


def test_no_prefetch_where_the_loss_would_see_other_images(tmp_path, tiny_yolo_pt):
    model = _distillation(tmp_path, tiny_yolo_pt)
    callbacks = []
    attach(SimpleNamespace(add_callback=lambda event, fn: callbacks.append(fn)),
           HeadDistillation(teacher_scale=2.0, logit_weight=1.0, onnx_teacher=True))
    loader = _batches(1)
    for device, multi_scale in (("cpu", 0.5), ("meta", 0.0)):
        trainer = SimpleNamespace(model=model, train_loader=loader, save_dir=tmp_path / "run",
                                  device=torch.device(device),
                                  args=SimpleNamespace(imgsz=64, distill_model=str(tiny_yolo_pt),
                                                       multi_scale=multi_scale, compile=False))
        callbacks[0](trainer)
        assert trainer.train_loader is loader and model.teacher_prefetch is None


def test_distillation_training_is_unchanged_and_leaves_no_thread(tmp_path, tiny_yolo, monkeypatch):
    """Real ultralytics training with the onnxruntime teacher: the same losses and weights, overlapped or not."""
    from edge.distill import teacher_arguments
    from edge.torch_threads import train_threads
    from edge.training import train_yolo
    from edge.yolo_dataset import scenario_items, write_yolo_dataset
    from endpoint.sources.scenario import CLASS_NAMES, SyntheticScenario

    items = scenario_items(SyntheticScenario(), "dusk", 0, 32, "dusk-")
    data = write_yolo_dataset(tmp_path / "data", {"train": items, "val": items[:4]}, list(CLASS_NAMES))
    losses, prefetches, threads = {}, [], set()
    loss = EdgeDistillationModel.loss

    def recording(self, batch, preds=None):
        out = loss(self, batch, preds)
        if self.training:
            losses.setdefault(self.head.overlap, []).append(out[0].detach().clone())
            threads.add(torch.get_num_threads())
        return out

    monkeypatch.setattr(EdgeDistillationModel, "loss", recording)
    close = TeacherPrefetch.close
    monkeypatch.setattr(TeacherPrefetch, "close", lambda self: prefetches.append(self) or close(self))
    weights = {}
    for overlap in (False, True):
        config = LearningConfig(imgsz=64, batch=16, distill_logit_weight=1.0, distill_overlap_teacher=overlap,
                                distill_cached_teacher=False,
                                teacher_input_scale=tiny_yolo.imgsz / 64, cache_dir=tmp_path / "cache")
        last = train_yolo(model_source(ModelSpec(scale=(0.33, 0.125, 64)), tmp_path), data,
                          TrainSpec(epochs=2, warmup_epochs=0), config, tmp_path / f"run-{overlap}",
                          **teacher_arguments(tiny_yolo.pt, config))
        ckpt = torch.load(last, map_location="cpu", weights_only=False)
        state = (ckpt.get("ema") or ckpt["model"]).state_dict()
        weights[overlap] = {k: v for k, v in state.items() if v.dtype.is_floating_point}
    assert len(prefetches) == 1 and (prefetches[0].overlapped, prefetches[0].missed) == (4, 0)
    assert not _prefetch_threads()  # the trainer closed its loader when training ended
    assert len(losses[True]) == len(losses[False]) == 4
    # the teacher's export in the training's set-up left torch at the training's threads, not ultralytics' count
    assert threads == {train_threads(config.train_threads)}
    for got, expected in zip(losses[True], losses[False]):
        assert torch.equal(got, expected)
    assert all(torch.equal(weights[True][k], weights[False][k]) for k in weights[False])


if __name__ == "__main__":
    pytest.main([__file__])
