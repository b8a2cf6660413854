"""How much of an INT8 model changed against its parent: changed weight bytes, whatever a delta codec makes of them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper


@dataclass(frozen=True)
class Int8Change:
    """Bytes of INT8 weight tensors that differ (same name, element by element), of how many; other tensors too."""

    int8_changed_bytes: int
    int8_total_bytes: int
    other_changed_bytes: int  # int32 biases, scales, zero points and float constants

    @property
    def int8_changed_share(self) -> float:
        return self.int8_changed_bytes / self.int8_total_bytes if self.int8_total_bytes else 0.0


def _raw(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array).reshape(-1).view(np.uint8)


def int8_change(parent_bytes: bytes, new_bytes: bytes) -> Int8Change:
    """Compare the initializers of two ONNX models by name; a tensor missing from the parent counts as all new."""
    parent = {t.name: t for t in onnx.load_model_from_string(parent_bytes).graph.initializer}
    int8_changed = int8_total = other_changed = 0
    for tensor in onnx.load_model_from_string(new_bytes).graph.initializer:
        new = numpy_helper.to_array(tensor)
        old = numpy_helper.to_array(parent[tensor.name]) if tensor.name in parent else None
        if old is None or old.shape != new.shape or old.dtype != new.dtype:
            differing = new.nbytes
        else:
            # byte-wise: an int32 bias that moved by one step changes one of its four bytes
            differing = int(np.count_nonzero(_raw(old) != _raw(new)))
        if tensor.data_type == TensorProto.INT8:
            int8_changed += differing
            int8_total += new.nbytes
        else:
            other_changed += differing
    return Int8Change(int8_changed, int8_total, other_changed)


__all__ = ["Int8Change", "int8_change"]
