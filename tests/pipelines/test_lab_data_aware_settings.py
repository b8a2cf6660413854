"""``edgeloop lab --scenario DIR``: data-aware image size, bootstrap epochs and batch, printed, each overridable."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from edge.data_profile import data_aware_settings, profile_folder
from edge.learning_config import LearningConfig
from edge.yolo_dataset import LabelledImage, write_yolo_dataset
from pipelines.cli import build_parser
from pipelines.lab_session import lab_learning_config


@pytest.fixture(scope="module")
def small_objects(tmp_path_factory):
    """A folder of 640 px frames with 19 px objects: the data-aware settings differ from every fixed default."""
    root = tmp_path_factory.mktemp("small-objects")
    image = np.zeros((480, 640, 3), np.uint8)
    box = np.array([[0.10, 0.10, 0.13, 0.14]], np.float32)
    items = [LabelledImage(f"f{i}", image, box, np.array([0])) for i in range(6)]
    write_yolo_dataset(root, {"train": items, "val": items[:2]}, ["thing"])
    chosen = data_aware_settings(profile_folder(root))
    fixed = LearningConfig()
    assert (chosen.imgsz, chosen.batch, chosen.epochs) != (fixed.imgsz, fixed.batch, fixed.bootstrap.epochs)
    return root, chosen


def configure(folder, tmp_path, *flags):
    args = build_parser().parse_args(["lab", "--scenario", str(folder), "--out", str(tmp_path), *flags])
    printed: list[str] = []
    return lab_learning_config(args, tmp_path, folder, printed.append), "\n".join(printed)


def test_the_data_chooses_and_the_start_says_so(small_objects, tmp_path):
    folder, chosen = small_objects
    config, printed = configure(folder, tmp_path)
    assert (config.imgsz, config.batch, config.bootstrap.epochs) == (chosen.imgsz, chosen.batch, chosen.epochs)
    assert config.nominal_batch == chosen.nominal_batch and config.bootstrap.lr0 == chosen.lr0
    assert f"imgsz {chosen.imgsz}" in printed and f"bootstrap {chosen.epochs} epochs" in printed
    assert f"batch {chosen.batch}" in printed and "override any of them" in printed


def test_the_command_line_overrides_the_image_size(small_objects, tmp_path):
    folder, chosen = small_objects
    config, printed = configure(folder, tmp_path, "--imgsz", "96")
    assert config.imgsz == 96 and config.batch == chosen.batch and config.bootstrap.epochs == chosen.epochs
    assert "kept from your flags or --learning: imgsz" in printed


def test_the_learning_yaml_overrides_each_field_alone(small_objects, tmp_path):
    folder, chosen = small_objects
    learning = tmp_path / "learning.yaml"
    learning.write_text(yaml.safe_dump({"batch": 3, "bootstrap": {"epochs": 5}}))
    config, printed = configure(folder, tmp_path, "--learning", str(learning))
    assert (config.imgsz, config.batch, config.bootstrap.epochs) == (chosen.imgsz, 3, 5)
    assert config.nominal_batch == 3 and config.bootstrap.lr0 == chosen.lr0  # a step per batch, the user's batch
    assert "kept from your flags or --learning: batch, bootstrap" in printed


def test_a_yaml_bootstrap_without_epochs_keeps_the_data_aware_epochs(small_objects, tmp_path):
    folder, chosen = small_objects
    learning = tmp_path / "learning.yaml"
    learning.write_text(yaml.safe_dump({"bootstrap": {"lr0": 0.05}}))
    config, _ = configure(folder, tmp_path, "--learning", str(learning))
    assert config.bootstrap.lr0 == 0.05 and config.bootstrap.epochs == chosen.epochs


def test_the_learning_yaml_overrides_the_nominal_batch(small_objects, tmp_path):
    folder, chosen = small_objects
    learning = tmp_path / "learning.yaml"
    learning.write_text(yaml.safe_dump({"nominal_batch": 64}))
    config, printed = configure(folder, tmp_path, "--learning", str(learning))
    assert config.nominal_batch == 64 and config.batch == chosen.batch
    assert "kept from your flags or --learning: nominal_batch" in printed
