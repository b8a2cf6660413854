"""YOLO-format data set folders: write labelled images that ultralytics trains on, and read them back."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np
import yaml

from endpoint.wire.yolo_labels import read_yolo_labels

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelledImage:
    """An image (BGR array or encoded JPEG/PNG bytes) with boxes as normalized x1 y1 x2 y2."""

    name: str
    image: np.ndarray | bytes
    boxes: np.ndarray  # Nx4 float, normalized xyxy
    classes: np.ndarray  # N int


def write_yolo_dataset(root: str | Path, splits: dict[str, Iterable[LabelledImage]],
                       class_names: Sequence[str]) -> Path:
    """Write ``images/<split>``, ``labels/<split>`` and ``data.yaml``; return the yaml path."""
    root = Path(root)
    for split, items in splits.items():
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for item in items:
            _write_item(root, split, item)
    data = {"path": str(root.resolve()), "names": dict(enumerate(class_names))}
    for split in splits:
        data[split] = f"images/{split}"
    data.setdefault("val", data.get("train"))
    data.setdefault("train", data.get("val"))
    yaml_path = root / "data.yaml"
    yaml_path.write_text(yaml.safe_dump(data, sort_keys=False))
    return yaml_path


def yolo_label_lines(boxes: np.ndarray, classes: np.ndarray) -> list[str]:
    """YOLO label rows: ``cls cx cy w h``, all normalized."""
    lines = []
    for (x1, y1, x2, y2), cls in zip(np.asarray(boxes, dtype=np.float64).reshape(-1, 4), classes):
        lines.append(f"{int(cls)} {(x1 + x2) / 2:.6f} {(y1 + y2) / 2:.6f} {x2 - x1:.6f} {y2 - y1:.6f}")
    return lines


def _write_item(root: Path, split: str, item: LabelledImage) -> None:
    stem = Path(item.name).stem
    if isinstance(item.image, (bytes, bytearray)):
        (root / "images" / split / f"{stem}.jpg").write_bytes(bytes(item.image))
    else:
        cv2.imwrite(str(root / "images" / split / f"{stem}.png"), item.image)
    lines = yolo_label_lines(item.boxes, item.classes)
    (root / "labels" / split / f"{stem}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))


def scenario_items(scenario, domain: str, start: int, count: int, prefix: str = "") -> list[LabelledImage]:
    """Labelled frames ``start .. start+count-1`` of one scenario domain, named ``<domain>-<prefix><index>``."""
    items = []
    for i in range(start, start + count):
        frame = scenario.frame(domain, i)
        items.append(LabelledImage(f"{domain}-{prefix}{i:06d}", frame.image, frame.boxes, frame.classes))
    return items


def scenario_dataset(root: str | Path, scenario, domain: str, n_train: int, n_val: int,
                     val_offset: int = 100_000) -> Path:
    """A YOLO data set from a synthetic scenario's domain; val frames never overlap train frames."""
    from endpoint.sources.scenario import CLASS_NAMES

    return write_yolo_dataset(root, {"train": scenario_items(scenario, domain, 0, n_train, "train-"),
                                     "val": scenario_items(scenario, domain, val_offset, n_val, "val-")},
                              CLASS_NAMES)


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def folder_items(root: str | Path, split: str) -> list[LabelledImage]:
    """The labelled images of one split of a YOLO folder (``images/<split>`` beside ``labels/<split>``)."""
    root = Path(root)
    items = []
    for path in sorted((root / "images" / split).iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            log.warning("skipping unreadable image %s", path)
            continue
        boxes, classes = read_yolo_labels(root / "labels" / split / f"{path.stem}.txt")
        items.append(LabelledImage(path.stem, image, boxes, classes))
    return items


def folder_class_names(root: str | Path) -> list[str]:
    """The class names of a YOLO folder's ``data.yaml`` (a list, or a dict keyed by class id)."""
    raw = yaml.safe_load((Path(root) / "data.yaml").read_text()) or {}
    names = raw.get("names")
    return [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names or [])
