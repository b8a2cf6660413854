"""Children of a real INT8 ONNX model with a fraction of their INT8 weight values moved, as a sparse fine-tune does."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def int8_weights(model) -> list:
    """The model's INT8 weight initializers, largest first."""
    import onnx

    weights = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.raw_data) >= 64]
    return sorted(weights, key=lambda t: len(t.raw_data), reverse=True)


def sparse_int8_child(src: Path, dst: Path, fraction: float, tensor_count: int | None = 1, seed: int = 0) -> int:
    """Move ``fraction`` of the INT8 values of the ``tensor_count`` largest weights (all if None) by a few steps,
    as a requantized small update does; return how many values changed."""
    import onnx
    from onnx import numpy_helper

    rng = np.random.default_rng(seed)
    model = onnx.load(str(src))
    changed = 0
    for tensor in int8_weights(model)[:tensor_count]:
        values = numpy_helper.to_array(tensor).copy()
        flat = values.reshape(-1)
        picked = np.flatnonzero(rng.random(flat.size) < fraction)
        steps = np.rint(rng.normal(0.0, 1.5, picked.size)).astype(np.int16)
        steps[steps == 0] = 1
        moved = np.clip(flat[picked].astype(np.int16) + steps, -127, 127).astype(np.int8)
        changed += int((moved != flat[picked]).sum())
        flat[picked] = moved
        tensor.CopyFrom(numpy_helper.from_array(values, tensor.name))
    onnx.save(model, str(dst))
    return changed
