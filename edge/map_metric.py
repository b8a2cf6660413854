"""COCO-style mean average precision: 101-point interpolation, IoU 0.50:0.05:0.95.

The one mAP of edgeloop; it follows pycocotools' bbox evaluation (area range "all",
100 detections per image and class) and is cross-checked against it in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


@dataclass(frozen=True)
class MapResult:
    """mAP over the classes that have ground truth; 0.0 when nothing was labelled."""

    map50: float
    map50_95: float
    ap50_95_per_class: dict[int, float] = field(default_factory=dict)
    images: int = 0
    ground_truth_boxes: int = 0


class MeanAveragePrecision:
    """Accumulate predictions and ground truth image by image, then ``compute()``."""

    def __init__(self, max_detections_per_class: int = 100):
        self.max_detections_per_class = max_detections_per_class
        self.reset()

    def reset(self) -> None:
        self._scores: dict[int, list[np.ndarray]] = {}
        self._matched: dict[int, list[np.ndarray]] = {}  # per class: [thresholds x detections] bool blocks
        self._gt_counts: dict[int, int] = {}
        self._images = 0

    def update(self, pred_boxes, pred_scores, pred_classes, gt_boxes, gt_classes) -> None:
        """Add one image; boxes are x1 y1 x2 y2 in any unit shared by predictions and ground truth."""
        pred_boxes = np.asarray(pred_boxes, dtype=np.float64).reshape(-1, 4)
        pred_scores = np.asarray(pred_scores, dtype=np.float64).reshape(-1)
        pred_classes = np.asarray(pred_classes, dtype=np.int64).reshape(-1)
        gt_boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
        gt_classes = np.asarray(gt_classes, dtype=np.int64).reshape(-1)
        if not len(pred_boxes) == len(pred_scores) == len(pred_classes) or len(gt_boxes) != len(gt_classes):
            raise ValueError("boxes, scores and classes must have the same length")
        self._images += 1
        for cls in np.union1d(np.unique(pred_classes), np.unique(gt_classes)):
            cls = int(cls)
            gts = gt_boxes[gt_classes == cls]
            self._gt_counts[cls] = self._gt_counts.get(cls, 0) + len(gts)
            mask = pred_classes == cls
            if not mask.any():
                continue
            scores = pred_scores[mask]
            # Same tie order as pycocotools: a stable sort on descending score.
            order = np.argsort(-scores, kind="mergesort")[: self.max_detections_per_class]
            boxes, scores = pred_boxes[mask][order], scores[order]
            self._scores.setdefault(cls, []).append(scores)
            self._matched.setdefault(cls, []).append(_match(box_iou(boxes, gts)))

    def compute(self) -> MapResult:
        """AP per class averaged over IoU thresholds, then over classes with ground truth."""
        ap_per_class: dict[int, np.ndarray] = {}
        for cls, n_gt in sorted(self._gt_counts.items()):
            if n_gt == 0:
                continue  # COCO leaves classes without ground truth out of the mean
            if cls not in self._scores:
                ap_per_class[cls] = np.zeros(len(IOU_THRESHOLDS))
                continue
            scores = np.concatenate(self._scores[cls])
            matched = np.concatenate(self._matched[cls], axis=1)
            order = np.argsort(-scores, kind="mergesort")
            ap_per_class[cls] = _average_precision(matched[:, order], n_gt)
        if not ap_per_class:
            return MapResult(0.0, 0.0, {}, self._images, 0)
        table = np.stack(list(ap_per_class.values()))  # classes x thresholds
        return MapResult(
            map50=float(table[:, 0].mean()),
            map50_95=float(table.mean()),
            ap50_95_per_class={c: float(ap.mean()) for c, ap in ap_per_class.items()},
            images=self._images,
            ground_truth_boxes=int(sum(self._gt_counts.values())),
        )


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of xyxy boxes, ``len(a) x len(b)``."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _match(ious: np.ndarray) -> np.ndarray:
    """Greedy COCO matching of score-sorted detections: each takes the best free ground truth above the threshold."""
    n_det, n_gt = ious.shape
    matched = np.zeros((len(IOU_THRESHOLDS), n_det), dtype=bool)
    for t_index, threshold in enumerate(IOU_THRESHOLDS):
        taken = np.zeros(n_gt, dtype=bool)
        threshold = min(threshold, 1 - 1e-10)
        for d in range(n_det):
            best, best_iou = -1, threshold
            for g in range(n_gt):
                if not taken[g] and ious[d, g] >= best_iou:
                    best, best_iou = g, ious[d, g]
            if best >= 0:
                taken[best] = True
                matched[t_index, d] = True
    return matched


def _average_precision(matched: np.ndarray, n_gt: int) -> np.ndarray:
    """101-point interpolated AP per IoU threshold from score-ordered true-positive flags."""
    tp = np.cumsum(matched, axis=1, dtype=np.float64)
    fp = np.cumsum(~matched, axis=1, dtype=np.float64)
    recall = tp / n_gt
    precision = tp / (tp + fp + np.spacing(1))
    out = np.zeros(len(matched))
    for t in range(len(matched)):
        # Precision envelope: the best precision at any recall at least this high.
        envelope = np.maximum.accumulate(precision[t][::-1])[::-1]
        idx = np.searchsorted(recall[t], RECALL_POINTS, side="left")
        valid = idx < len(envelope)
        out[t] = np.where(valid, envelope[np.minimum(idx, len(envelope) - 1)], 0.0).sum() / len(RECALL_POINTS)
    return out


__all__ = ["MapResult", "MeanAveragePrecision", "box_iou", "IOU_THRESHOLDS"]
