"""Data-aware training defaults for a YOLO folder: input size, epochs and batch from its images and objects.

Small objects need a larger input: the input is chosen so that the median object's short side covers
about ``TARGET_OBJECT_PX`` pixels, within 128 px and the images' own size (640 at most on a CPU). Epochs
follow the image count (about ``TARGET_IMAGE_PASSES`` images seen), and the batch shrinks as inputs grow.
A small folder gives few optimizer steps, so every batch is one (no accumulation to ultralytics' nominal 64)
at the AdamW rate ultralytics itself picks for short runs (``optimizer='auto'``: 0.002 x 5 / (4 + classes)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.yolo_dataset import IMAGE_SUFFIXES
from endpoint.wire.yolo_labels import read_yolo_labels

TARGET_OBJECT_PX = 16
TARGET_IMAGE_PASSES = 3000
MIN_IMGSZ, MAX_IMGSZ = 128, 640
MIN_EPOCHS, MAX_EPOCHS = 12, 100
AUTO_ADAMW_LR = 0.002  # ultralytics' optimizer='auto' below 10k iterations: lr = this x 5 / (4 + classes)
SAMPLED_IMAGES = 200  # enough for medians; a large folder is not read whole


@dataclass(frozen=True)
class DataProfile:
    """What a folder's training split looks like."""

    images: int
    median_long_side_px: int
    median_object_short_side: float  # relative to the image's long side
    objects: int
    classes: int = 1  # distinct class ids in the sampled labels (at least 1)


@dataclass(frozen=True)
class DataAwareSettings:
    imgsz: int
    epochs: int
    batch: int
    lr0: float
    nominal_batch: int  # ultralytics 'nbs': equal to the batch, so each batch is an optimizer step

    def describe(self, profile: DataProfile) -> str:
        return (f"imgsz {self.imgsz} (median object {100 * profile.median_object_short_side:.1f}% of a "
                f"{profile.median_long_side_px} px image), bootstrap {self.epochs} epochs ({profile.images} images), "
                f"batch {self.batch} (a step per batch), lr0 {self.lr0:.4f} ({profile.classes} classes)")


def profile_folder(root: str | Path, split: str = "train") -> DataProfile:
    """Image sizes and object sizes of one split, from (at most ``SAMPLED_IMAGES``) image headers and label files."""
    root = Path(root)
    paths = sorted(p for p in (root / "images" / split).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    step = max(1, len(paths) // SAMPLED_IMAGES)
    long_sides, object_sides, class_ids = [], [], set()
    for path in paths[::step]:
        image = cv2.imread(str(path), cv2.IMREAD_REDUCED_GRAYSCALE_2)  # half size is enough for the shape
        if image is None:
            continue
        h, w = image.shape[0] * 2, image.shape[1] * 2
        long_sides.append(max(h, w))
        boxes, classes = read_yolo_labels(root / "labels" / split / f"{path.stem}.txt")
        class_ids.update(int(c) for c in classes)
        for x1, y1, x2, y2 in boxes:
            object_sides.append(min((x2 - x1) * w, (y2 - y1) * h) / max(h, w))
    if not long_sides:
        raise ValueError(f"{root}/images/{split} holds no readable image")
    return DataProfile(images=len(paths), median_long_side_px=int(np.median(long_sides)),
                       median_object_short_side=float(np.median(object_sides)) if object_sides else 1.0,
                       objects=len(object_sides), classes=max(1, len(class_ids)))


def data_aware_settings(profile: DataProfile) -> DataAwareSettings:
    wanted = TARGET_OBJECT_PX / max(profile.median_object_short_side, 1e-3)
    ceiling = max(MIN_IMGSZ, min(MAX_IMGSZ, _round32(profile.median_long_side_px)))
    imgsz = int(min(ceiling, max(MIN_IMGSZ, _round32(wanted))))
    epochs = int(min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(TARGET_IMAGE_PASSES / max(1, profile.images)))))
    batch = 16 if imgsz <= 320 else 8 if imgsz <= 480 else 4
    lr0 = round(AUTO_ADAMW_LR * 5 / (4 + profile.classes), 6)
    return DataAwareSettings(imgsz, epochs, batch, lr0, nominal_batch=batch)


def _round32(px: float) -> int:
    return int(math.ceil(px / 32) * 32)
