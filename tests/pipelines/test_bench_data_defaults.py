"""``bench data-defaults``: its small-object folders are made as asked (training it is the bench's job, minutes)."""

from __future__ import annotations

import numpy as np
import pytest

from endpoint.wire.yolo_labels import read_yolo_labels
from pipelines.bench_data_defaults import SmallObjectSet, make_small_object_folder

TINY = SmallObjectSet("tiny", width=200, height=150, object_px=(3, 6), train_images=4, val_images=2, max_objects=3)


def test_generated_objects_have_the_asked_pixel_sizes(tmp_path):
    folder = make_small_object_folder(tmp_path / "set", TINY, seed=1)
    sides = []
    for split, count in (("train", TINY.train_images), ("val", TINY.val_images)):
        labels = sorted((folder / "labels" / split).glob("*.txt"))
        assert len(labels) == count == len(list((folder / "images" / split).glob("*.jpg")))
        for path in labels:
            boxes, classes = read_yolo_labels(path)
            assert set(classes.tolist()) <= {0}
            sides += [*((boxes[:, 2] - boxes[:, 0]) * TINY.width), *((boxes[:, 3] - boxes[:, 1]) * TINY.height)]
    assert sides and np.all((np.array(sides) > 2.5) & (np.array(sides) < 6.5))
    assert (folder / "data.yaml").read_text().count("square") == 1


def test_objects_that_do_not_fit_are_refused(tmp_path):
    with pytest.raises(ValueError, match="do not fit"):
        make_small_object_folder(tmp_path, SmallObjectSet("bad", width=64, height=48, object_px=(8, 60)), seed=0)
