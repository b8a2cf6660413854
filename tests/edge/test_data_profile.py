"""Data-aware defaults: small objects get a larger input, few images more epochs, large inputs a smaller batch."""

from __future__ import annotations

import numpy as np
import pytest

from edge.data_profile import DataProfile, data_aware_settings, profile_folder
from edge.yolo_dataset import LabelledImage, write_yolo_dataset


@pytest.mark.parametrize("profile, imgsz, epochs, batch", [
    (DataProfile(images=100, median_long_side_px=1280, median_object_short_side=0.02, objects=300), 640, 30, 4),
    (DataProfile(images=100, median_long_side_px=1280, median_object_short_side=0.06, objects=300), 288, 30, 16),
    (DataProfile(images=5000, median_long_side_px=320, median_object_short_side=0.3, objects=9000), 128, 12, 16),
    (DataProfile(images=40, median_long_side_px=240, median_object_short_side=0.01, objects=40), 256, 75, 16),
    (DataProfile(images=10, median_long_side_px=64, median_object_short_side=0.5, objects=10), 128, 100, 16),
])
def test_settings_follow_object_size_image_size_and_count(profile, imgsz, epochs, batch):
    chosen = data_aware_settings(profile)
    assert (chosen.imgsz, chosen.epochs, chosen.batch) == (imgsz, epochs, batch)
    assert chosen.imgsz % 32 == 0


def test_a_folder_is_profiled_from_its_images_and_labels(tmp_path):
    image = np.zeros((480, 640, 3), np.uint8)
    small = np.array([[0.10, 0.10, 0.13, 0.14]], np.float32)  # 19 x 19 px in a 640 px image
    items = [LabelledImage(f"f{i}", image, small, np.array([0])) for i in range(6)]
    write_yolo_dataset(tmp_path, {"train": items}, ["thing"])
    profile = profile_folder(tmp_path)
    assert profile.images == 6 and profile.objects == 6 and profile.median_long_side_px == 640
    assert profile.median_object_short_side == pytest.approx(19.2 / 640, rel=0.05)
    assert data_aware_settings(profile).imgsz == 544  # 16 px for a 3 % object


@pytest.mark.parametrize("classes, lr0", [(1, 0.002), (6, 0.001)])
def test_a_small_folder_steps_every_batch_at_ultralytics_short_run_rate(classes, lr0):
    """ultralytics' optimizer='auto' picks AdamW at 0.002 x 5 / (4 + classes) for short runs; no accumulation."""
    for images, long_side, side in ((100, 640, 0.025), (3000, 320, 0.3)):
        chosen = data_aware_settings(DataProfile(images, long_side, side, objects=images, classes=classes))
        assert chosen.lr0 == pytest.approx(lr0) and chosen.nominal_batch == chosen.batch


def test_the_profile_counts_the_classes_it_sees(tmp_path):
    image = np.zeros((120, 160, 3), np.uint8)
    box = np.array([[0.1, 0.1, 0.3, 0.3]], np.float32)
    items = [LabelledImage(f"f{i}", image, box, np.array([i % 3])) for i in range(6)]
    write_yolo_dataset(tmp_path, {"train": items}, ["a", "b", "c", "d"])
    assert profile_folder(tmp_path).classes == 3
