"""endpoint.wire.yolo_labels: the one YOLO label parser and its clipping rule, shared by the endpoint and the edge."""

from __future__ import annotations

import numpy as np
import pytest

from endpoint.wire.protocol import MAX_BOXES_PER_FRAME
from endpoint.wire.yolo_labels import parse_yolo_labels, read_label_file, read_yolo_labels

# (label text, expected xyxy boxes, expected classes)
CASES = [
    ("1 0.5 0.5 0.2 0.4", [[0.4, 0.3, 0.6, 0.7]], [1]),
    ("0 0.05 0.5 0.2 0.2", [[0.0, 0.4, 0.15, 0.6]], [0]),  # sticks out left: clipped to the image
    ("0 0.95 0.95 0.2 0.2", [[0.85, 0.85, 1.0, 1.0]], [0]),  # sticks out right and bottom
    ("0 1.5 0.5 0.2 0.2", [], []),  # wholly outside: nothing left after clipping
    ("0 0.5 0.5 0 0.2", [], []),  # no width
    ("2.0 0.5 0.5 0.2 0.2", [[0.4, 0.4, 0.6, 0.6]], [2]),  # a class written as float is an integer
    ("2.5 0.5 0.5 0.2 0.2", [], []),
    ("-1 0.5 0.5 0.2 0.2", [], []),
    ("0 0.5 0.5 0.2", [], []),  # too few fields
    ("0 0.5 nan 0.2 0.2", [], []),
    ("0 0.5 x 0.2 0.2", [], []),
    ("3 0.5 0.5 0.2 0.2 0.9 extra", [[0.4, 0.4, 0.6, 0.6]], [3]),  # extra fields are ignored
    ("\n  \n1 0.5 0.5 0.2 0.4\nbad row\n0 0.25 0.25 0.1 0.1\n", [[0.4, 0.3, 0.6, 0.7], [0.2, 0.2, 0.3, 0.3]], [1, 0]),
    ("", [], []),
]


@pytest.mark.parametrize("text, boxes, classes", CASES)
def test_parse_rule(text, boxes, classes):
    got_boxes, got_classes = parse_yolo_labels(text)
    assert got_boxes.dtype == np.float32 and got_boxes.shape == (len(boxes), 4)
    assert got_classes.dtype == np.int64
    np.testing.assert_allclose(got_boxes, np.asarray(boxes, np.float32).reshape(-1, 4), atol=1e-6)
    np.testing.assert_array_equal(got_classes, classes)


def test_rows_beyond_the_bound_are_ignored():
    boxes, classes = parse_yolo_labels("0 0.5 0.5 0.1 0.1\n" * (MAX_BOXES_PER_FRAME + 5))
    assert len(boxes) == len(classes) == MAX_BOXES_PER_FRAME


def test_files_missing_and_present(tmp_path):
    path = tmp_path / "a.txt"
    assert read_label_file(path) is None  # unlabelled image
    assert read_yolo_labels(path)[0].shape == (0, 4)
    path.write_text("1 0.05 0.5 0.2 0.4\n")
    (det,) = read_label_file(path)
    assert det.cls == 1 and det.conf == 1.0
    assert det.box == pytest.approx((0.0, 0.3, 0.15, 0.7), abs=1e-6)
    np.testing.assert_allclose(read_yolo_labels(path)[0], [det.box], atol=1e-6)
