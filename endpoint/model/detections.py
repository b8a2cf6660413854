"""The one detections type the endpoint passes around: pixel boxes, confidences, class ids."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from endpoint.wire.protocol import Detection


@dataclass(frozen=True)
class Detections:
    """N detections of one image: ``xyxy`` (Nx4 float32, pixels), ``confidence`` (N float32), ``class_id`` (N int64)."""

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        confidence = np.asarray(self.confidence, dtype=np.float32).reshape(-1)
        class_id = np.asarray(self.class_id, dtype=np.int64).reshape(-1)
        if not len(xyxy) == len(confidence) == len(class_id):
            raise ValueError(f"lengths differ: {len(xyxy)} boxes, {len(confidence)} confidences, "
                             f"{len(class_id)} class ids")
        # frozen dataclass: normalize dtypes once here so every consumer can rely on them
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "confidence", confidence)
        object.__setattr__(self, "class_id", class_id)

    @classmethod
    def empty(cls) -> Detections:
        """No detections: one shared, read-only instance (most frames of a quiet scene end here, allocating nothing)."""
        return _EMPTY

    def __len__(self) -> int:
        return len(self.class_id)

    def to_protocol(self, width: int, height: int) -> list[Detection]:
        """Wire form: boxes normalized to 0..1 by the image ``width`` and ``height`` in pixels."""
        if width <= 0 or height <= 0:
            raise ValueError(f"image size must be positive, got {width}x{height}")
        if not len(self.class_id):
            return []  # most frames of a quiet scene: skip six array operations on nothing
        norm = self.xyxy.astype(np.float64) / np.array([width, height, width, height], dtype=np.float64)
        norm = np.clip(norm, 0.0, 1.0)
        conf = np.clip(self.confidence.astype(np.float64), 0.0, 1.0)
        return [Detection(cls=int(c), conf=float(p), box=tuple(float(v) for v in b))
                for b, p, c in zip(norm, conf, self.class_id)]


_EMPTY = Detections(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int64))
for _array in (_EMPTY.xyxy, _EMPTY.confidence, _EMPTY.class_id):
    _array.flags.writeable = False
