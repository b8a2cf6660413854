"""edge.map_metric against pycocotools on the same predictions, plus hand-checked cases."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from edge.map_metric import MeanAveragePrecision, box_iou

pycocotools = pytest.importorskip("pycocotools")
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402


def _coco_map(images, n_classes):
    """mAP50-95 and mAP50 from pycocotools for a list of (pred_boxes, scores, classes, gt_boxes, gt_classes)."""
    gt = {"images": [], "annotations": [], "categories": [{"id": c + 1, "name": str(c)} for c in range(n_classes)]}
    dets = []
    for img_id, (pb, ps, pc, gb, gc) in enumerate(images, start=1):
        gt["images"].append({"id": img_id, "width": 1000, "height": 1000})
        for box, cls in zip(gb, gc):
            w, h = box[2] - box[0], box[3] - box[1]
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": img_id, "category_id": int(cls) + 1,
                                      "bbox": [box[0], box[1], w, h], "area": w * h, "iscrowd": 0})
        for box, score, cls in zip(pb, ps, pc):
            dets.append({"image_id": img_id, "category_id": int(cls) + 1, "score": float(score),
                         "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]]})
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(dets) if dets else COCO()
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats[0], ev.stats[1]


def _ours(images):
    metric = MeanAveragePrecision()
    for image in images:
        metric.update(*image)
    return metric.compute()


def _random_boxes(rng, n, size=1000.0, max_side=0.2):
    xy = rng.uniform(0, size * (1 - max_side), size=(n, 2))
    wh = rng.uniform(size * 0.02, size * max_side, size=(n, 2))
    return np.round(np.concatenate([xy, xy + wh], axis=1), 1)


def _random_case(seed, n_images=20, n_classes=3):
    """Heavily jittered ground truth and random boxes, with random classes and tied, uninformative scores."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n_images):
        gb = _random_boxes(rng, int(rng.integers(0, 6)), max_side=0.5)
        gc = rng.integers(0, n_classes, len(gb))
        wh = gb[:, 2:] - gb[:, :2]
        near = gb + rng.normal(0, 0.25, size=gb.shape) * np.concatenate([wh, wh], axis=1)
        pb = np.concatenate([near, _random_boxes(rng, int(rng.integers(0, 8)), max_side=0.5)])
        pc = np.where(rng.uniform(size=len(pb)) < 0.6, np.resize(gc, len(pb)) if len(gc) else 0,
                      rng.integers(0, n_classes, len(pb)))
        images.append((pb, np.round(rng.uniform(size=len(pb)), 1), pc, gb, gc))
    return images


def _realistic_case(seed, n_images=30, n_classes=3):
    """Detector-like predictions: jittered true boxes with high scores, some misses, low-score clutter."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n_images):
        gb = _random_boxes(rng, int(rng.integers(1, 6)))
        gc = rng.integers(0, n_classes, len(gb))
        keep = rng.uniform(size=len(gb)) > 0.15
        wh = (gb[:, 2:] - gb[:, :2])[keep]
        jitter = rng.normal(0, 0.08, size=(int(keep.sum()), 4)) * np.concatenate([wh, wh], axis=1)
        pb = np.concatenate([gb[keep] + jitter, _random_boxes(rng, int(rng.integers(0, 6)))])
        ps = np.concatenate([rng.uniform(0.5, 1.0, int(keep.sum())), rng.uniform(0.0, 0.6, len(pb) - int(keep.sum()))])
        pc = np.concatenate([np.where(rng.uniform(size=int(keep.sum())) < 0.9, gc[keep], (gc[keep] + 1) % n_classes),
                             rng.integers(0, n_classes, len(pb) - int(keep.sum()))])
        images.append((pb, ps, pc, gb, gc))
    return images


@pytest.mark.parametrize("case", [_random_case(0), _random_case(1), _random_case(2, n_images=5),
                                  _realistic_case(3), _realistic_case(4), _realistic_case(5, n_classes=1)],
                         ids=["random0", "random1", "random-few", "realistic3", "realistic4", "realistic-1class"])
def test_agrees_with_pycocotools(case):
    coco_map50_95, coco_map50 = _coco_map(case, n_classes=3)
    ours = _ours(case)
    assert ours.map50_95 == pytest.approx(coco_map50_95, abs=1e-3)
    assert ours.map50 == pytest.approx(coco_map50, abs=1e-3)


@pytest.mark.parametrize("case", [_random_case(0), _realistic_case(3)], ids=["random0", "realistic3"])
def test_cases_are_not_trivial(case):
    # Guards the cross-check against comparing two zeros or two ones.
    assert 0.01 < _ours(case).map50_95 < 0.95


def test_perfect_predictions_score_one():
    gb = np.array([[10, 10, 50, 50], [60, 60, 90, 95]], float)
    result = _ours([(gb, [0.9, 0.8], [0, 1], gb, [0, 1])])
    assert result.map50 == pytest.approx(1.0)
    assert result.map50_95 == pytest.approx(1.0)
    assert result.ap50_95_per_class == {0: pytest.approx(1.0), 1: pytest.approx(1.0)}


def test_missing_class_and_false_positives_lower_the_score():
    gb = np.array([[10, 10, 50, 50], [60, 60, 90, 95]], float)
    only_first = _ours([(gb[:1], [0.9], [0], gb, [0, 1])])
    assert only_first.ap50_95_per_class == {0: pytest.approx(1.0), 1: 0.0}
    assert only_first.map50_95 == pytest.approx(0.5)
    # A confident false positive ranked above the true positive halves the precision at every recall.
    with_fp = _ours([(np.array([[200, 200, 240, 240], [10, 10, 50, 50]]), [0.95, 0.9], [0, 0], gb[:1], [0])])
    assert with_fp.map50 == pytest.approx(0.5)


def test_no_ground_truth_gives_zero_and_reset_clears():
    metric = MeanAveragePrecision()
    metric.update([[0, 0, 1, 1]], [0.5], [0], np.zeros((0, 4)), [])
    assert metric.compute().map50_95 == 0.0
    metric.reset()
    metric.update([[0, 0, 1, 1]], [0.5], [0], [[0, 0, 1, 1]], [0])
    assert metric.compute().map50_95 == pytest.approx(1.0)
    assert metric.compute().images == 1


def test_box_iou():
    iou = box_iou(np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]]))
    np.testing.assert_allclose(iou, [[1.0, 1 / 3, 0.0]])
