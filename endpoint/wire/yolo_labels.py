"""The one YOLO label parser: ``cls cx cy w h`` rows (normalized) into xyxy boxes and class ids.

Rule, the same for every caller: a row is skipped when it has fewer than five fields, a
field is not a finite number, or the class is not an integer in 0..MAX_CLASS_ID; extra
fields (segments, confidences) are ignored. Boxes are clipped to the image (0..1) and a
box with no area left after clipping is dropped. At most MAX_BOXES_PER_FRAME rows are read.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from endpoint.wire.protocol import MAX_BOXES_PER_FRAME, MAX_CLASS_ID, Detection

log = logging.getLogger(__name__)


def parse_yolo_labels(text: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows of one label text into (Nx4 float32 normalized xyxy boxes, N int64 classes), by the rule above."""
    boxes: list[tuple[float, float, float, float]] = []
    classes: list[int] = []
    for number, line in enumerate(text.splitlines()):
        if len(boxes) >= MAX_BOXES_PER_FRAME:
            log.warning("label text has more than %d boxes; the rest from line %d on are ignored",
                        MAX_BOXES_PER_FRAME, number + 1)
            break
        parsed = _parse_row(line.split())
        if parsed is not None:
            classes.append(parsed[0])
            boxes.append(parsed[1])
    if not boxes:
        return np.zeros((0, 4), np.float32), np.zeros((0,), np.int64)
    return np.asarray(boxes, dtype=np.float32), np.asarray(classes, dtype=np.int64)


def read_yolo_labels(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The boxes and classes of a label file; a missing file means no objects."""
    path = Path(path)
    if not path.exists():
        return np.zeros((0, 4), np.float32), np.zeros((0,), np.int64)
    return parse_yolo_labels(path.read_text(errors="replace"))


def read_label_file(path: Path) -> list[Detection] | None:
    """The boxes of one label file as ground-truth detections; None when there is no file (unlabelled image)."""
    if not Path(path).exists():
        return None
    boxes, classes = read_yolo_labels(path)
    return [Detection(cls=int(c), conf=1.0, box=tuple(float(v) for v in b)) for b, c in zip(boxes, classes)]


def _parse_row(fields: list[str]) -> tuple[int, tuple[float, float, float, float]] | None:
    if len(fields) < 5:
        return None
    try:
        values = [float(v) for v in fields[:5]]
    except ValueError:
        return None
    if not all(math.isfinite(v) for v in values):
        return None
    cls, cx, cy, w, h = values
    if cls != int(cls) or not 0 <= cls <= MAX_CLASS_ID:
        return None
    x1, y1 = max(0.0, cx - w / 2), max(0.0, cy - h / 2)
    x2, y2 = min(1.0, cx + w / 2), min(1.0, cy + h / 2)
    if x2 <= x1 or y2 <= y1:  # nothing of the box is inside the image
        return None
    return int(cls), (x1, y1, x2, y2)


__all__ = ["parse_yolo_labels", "read_label_file", "read_yolo_labels"]
