"""Sparse student updates on the real ultralytics trainer, and INT8 that stays sparse on the real onnxruntime."""

from __future__ import annotations

import pytest
import torch

from edge.evaluate import evaluate_onnx
from edge.export import export_onnx, quantize_student
from edge.int8_change import int8_change
from edge.learning_config import LearningConfig, TrainSpec
from edge.sparse_quantize import requantize_like
from edge.sparse_update import SparseUpdate
from edge.training import train_yolo
from edge.yolo_dataset import scenario_items, write_yolo_dataset
from endpoint.sources.scenario import CLASS_NAMES, SyntheticScenario

FRACTION = 0.05


def _state(pt) -> dict[str, torch.Tensor]:
    """Float parameters and BN statistics of a saved ultralytics checkpoint (the EMA it saves)."""
    ckpt = torch.load(pt, map_location="cpu", weights_only=False)
    model = ckpt.get("ema") or ckpt["model"]
    return {k: v.float() for k, v in model.state_dict().items() if v.dtype.is_floating_point}


@pytest.fixture(scope="module", params=[False, True], ids=["channels-frozen", "channels-free"])
def sparse_run(request, tmp_path_factory, tiny_yolo):
    """One short sparse fine-tune of the tiny detector on dusk frames."""
    work = tmp_path_factory.mktemp("sparse")
    items = scenario_items(SyntheticScenario(), "dusk", 0, 32, "dusk-")
    data = write_yolo_dataset(work / "data", {"train": items, "val": items[:4]}, list(CLASS_NAMES))
    config = LearningConfig(imgsz=tiny_yolo.imgsz, batch=16, cache_dir=work / "cache", work_dir=work / "work")
    sparse = SparseUpdate(FRACTION, selection_batches=2, channels=request.param)
    # no warm-up and one step per batch: a few steps that move weights past an INT8 step, not only biases
    last = train_yolo(str(tiny_yolo.pt), data, TrainSpec(epochs=3, lr0=0.02, warmup_epochs=0), config,
                      work / "runs" / "s", sparse=sparse, nbs=16)
    return work, items, last, sparse


def test_sparse_training_keeps_unselected_coordinates_bit_identical(sparse_run, tiny_yolo):
    _, _, last, sparse = sparse_run
    base, new = _state(tiny_yolo.pt), _state(last)
    assert sparse.selected_coordinates == round(FRACTION * sparse.total_coordinates)
    moved = 0
    for name, tensor in new.items():
        mask = sparse.masks.get(name)
        if mask is not None:
            assert torch.equal(tensor[~mask], base[name][~mask]), name
            moved += int((tensor != base[name]).sum())
        elif not sparse.channels or tensor.ndim >= 2:  # BN statistics and scales, DFL: never trained
            assert torch.equal(tensor, base[name]), name
    assert 0 < moved <= sparse.selected_coordinates
    if sparse.channels:  # per-channel tensors trained, BN statistics followed the new domain
        assert any(not torch.equal(new[k], base[k]) for k in new if k.endswith("running_mean"))


def test_int8_of_a_sparse_update_changes_few_weight_bytes(sparse_run, tiny_yolo):
    work, items, last, sparse = sparse_run
    calibration = [i.image for i in items[:8]]
    base_fp32 = export_onnx(tiny_yolo.pt, work / "base.onnx", tiny_yolo.imgsz)
    base_int8 = quantize_student(base_fp32, work / "base.int8.onnx", calibration, tiny_yolo.imgsz)
    new_fp32 = export_onnx(last, work / "new.onnx", tiny_yolo.imgsz)
    fresh_int8 = quantize_student(new_fp32, work / "new.int8.onnx", calibration, tiny_yolo.imgsz)
    sparse_int8 = work / "new.sparse.int8.onnx"
    requantize_like(base_int8, base_fp32, new_fp32, sparse_int8,
                    template_int8=fresh_int8 if sparse.channels else None)
    base_bytes = base_int8.read_bytes()
    sparse_change = int8_change(base_bytes, sparse_int8.read_bytes())
    fresh_change = int8_change(base_bytes, fresh_int8.read_bytes())
    assert sparse_change.int8_changed_bytes > 0, sparse_change  # the update reached the INT8 weights
    # a few coordinates per channel may force a new scale for that channel; most weight bytes stay
    assert sparse_change.int8_changed_share <= 4 * FRACTION, sparse_change
    assert sparse_change.int8_changed_bytes <= fresh_change.int8_changed_bytes, (sparse_change, fresh_change)
    if not sparse.channels:
        # a fresh calibration moves every activation scale, so every int32 bias; the base's grid keeps them
        assert sparse_change.other_changed_bytes < fresh_change.other_changed_bytes / 2, (sparse_change, fresh_change)
    assert evaluate_onnx(sparse_int8, items[:8]).map50_95 >= 0.0  # onnxruntime loads and runs it
