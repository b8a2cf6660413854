"""Session fixtures for the model-push tests: an untrained INT8 YOLO and children with some or all tensors changed."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

TENSOR_TYPES = {1: np.float32, 2: np.uint8, 3: np.int8}  # onnx TensorProto data types safe to perturb


@dataclass(frozen=True)
class PushModels:
    """An untrained INT8 yolo11n (64 px) and two children: a few tensors changed, every tensor changed."""

    base: Path
    few_changed: Path
    all_changed: Path


def _perturb(src: Path, dst: Path, tensor_count: int | None) -> None:
    import onnx

    model = onnx.load(str(src))
    candidates = [t for t in model.graph.initializer if t.data_type in TENSOR_TYPES and len(t.raw_data) >= 64]
    if tensor_count is not None:  # the largest few: a small fine-tune step touching some layers
        candidates = sorted(candidates, key=lambda t: len(t.raw_data), reverse=True)[:tensor_count]
    for tensor in candidates:
        values = np.frombuffer(tensor.raw_data, dtype=TENSOR_TYPES[tensor.data_type]).copy()
        if values.dtype == np.float32:
            values += np.float32(1e-3)
        else:
            values ^= 1  # flips every element, so the tensor surely differs
        tensor.raw_data = values.tobytes()
    onnx.save(model, str(dst))


def build_push_models(tmp_path_factory) -> PushModels:
    """Export and quantize once per session (cached in the session's base temp dir)."""
    root = tmp_path_factory.getbasetemp() / "push-models"
    models = PushModels(root / "base.onnx", root / "few_changed.onnx", root / "all_changed.onnx")
    if models.all_changed.exists():
        return models
    root.mkdir(parents=True, exist_ok=True)
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from ultralytics import YOLO

    with contextlib.chdir(root):  # ultralytics writes the export next to the working directory
        exported = YOLO("yolo11n.yaml").export(format="onnx", imgsz=64, device="cpu", simplify=False)
    # INT8 like the real students, and small enough (about 2.8 MB) for one MQTT message.
    quantize_dynamic(str(Path(root, exported)), str(models.base), weight_type=QuantType.QInt8)
    _perturb(models.base, models.few_changed, tensor_count=3)
    _perturb(models.base, models.all_changed, tensor_count=None)
    return models


@pytest.fixture(scope="session")
def push_models(tmp_path_factory) -> PushModels:
    return build_push_models(tmp_path_factory)


IMAGE = np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32)


class OrtDetector:
    """A stand-in for the real detector: one onnxruntime session; ``detect`` returns (file name, raw output)."""

    def __init__(self, path: Path):
        self.name = Path(path).name
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # loads 5x faster
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def detect(self, image: np.ndarray) -> tuple[str, np.ndarray]:
        return self.name, self.session.run(None, {self.input_name: image})[0]
