"""Read YOLO-format label files (``cls cx cy w h``, normalized) into protocol detections."""

from __future__ import annotations

from pathlib import Path

from endpoint.protocol import Detection


def read_label_file(path: Path) -> list[Detection] | None:
    """The boxes of one label file; None when there is no file (unlabelled image)."""
    if not path.exists():
        return None
    out = []
    for line in path.read_text().splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        cls, cx, cy, w, h = int(float(fields[0])), *map(float, fields[1:5])
        box = (max(0.0, cx - w / 2), max(0.0, cy - h / 2), min(1.0, cx + w / 2), min(1.0, cy + h / 2))
        out.append(Detection(cls=cls, conf=1.0, box=box))
    return out
