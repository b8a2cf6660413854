"""Non-maximum suppression in numpy, matching ultralytics' ``non_max_suppression`` for detect outputs."""

from __future__ import annotations

import numpy as np

MAX_WH_PX = 7680  # per-class box offset ultralytics uses for class-aware NMS in one pass
MAX_NMS_BOXES = 30000  # boxes kept for NMS after sorting by confidence, as in ultralytics
# up to this many candidates, NMS works on their whole IoU matrix (float32 temporaries of 4 MiB at most);
# beyond it, the one-box-at-a-time loop, whose memory stays linear
MATRIX_NMS_MAX_BOXES = 1024


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box against Nx4 xyxy boxes; areas without the +1 of old Pascal code."""
    ix1 = np.maximum(box[0], boxes[:, 0])
    iy1 = np.maximum(box[1], boxes[:, 1])
    ix2 = np.minimum(box[2], boxes[:, 2])
    iy2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0).astype(boxes.dtype)


def nms_indices(xyxy: np.ndarray, scores: np.ndarray, iou_threshold: float,
                max_keep: int | None = None) -> np.ndarray:
    """Greedy NMS like torchvision.ops.nms: indices kept, highest score first; drops IoU > threshold.

    ``max_keep`` stops after that many boxes: greedy NMS keeps in score order, so the first ones do not change.
    """
    if max_keep is not None and max_keep <= 0:
        return np.zeros((0,), np.int64)
    order = np.argsort(-scores, kind="stable")
    if order.size <= MATRIX_NMS_MAX_BOXES:
        return order[_greedy_over_matrix(xyxy[order], iou_threshold, max_keep)]
    keep: list[int] = []
    while order.size:
        best = order[0]
        keep.append(int(best))
        if order.size == 1 or len(keep) == max_keep:
            break
        rest = order[1:]
        order = rest[box_iou(xyxy[best], xyxy[rest]) <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def pairwise_iou(xyxy: np.ndarray) -> np.ndarray:
    """IoU of every pair of N xyxy boxes (NxN), with box_iou's float32 arithmetic, element for element."""
    x1, y1, x2, y2 = (np.ascontiguousarray(xyxy[:, i]) for i in range(4))
    inter = np.maximum(np.minimum(x2[:, None], x2) - np.maximum(x1[:, None], x1), 0)
    inter *= np.maximum(np.minimum(y2[:, None], y2) - np.maximum(y1[:, None], y1), 0)
    area = (x2 - x1) * (y2 - y1)
    union = area[:, None] + area - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0).astype(xyxy.dtype)


def _greedy_over_matrix(xyxy_sorted: np.ndarray, iou_threshold: float, max_keep: int | None) -> np.ndarray:
    """Positions kept by greedy NMS over boxes sorted best first, from one IoU matrix.

    The loop only reads one row per kept box, so a crowded frame costs microseconds per box, not numpy calls.
    """
    # '~(iou <= t)' rather than 'iou > t': a NaN IoU suppresses, exactly as the one-box loop drops it
    suppresses = ~(pairwise_iou(xyxy_sorted) <= iou_threshold)
    removed = np.zeros(len(xyxy_sorted), bool)
    keep: list[int] = []
    for i in range(len(xyxy_sorted)):
        if removed[i]:
            continue
        keep.append(i)
        if len(keep) == max_keep:
            break
        removed |= suppresses[i]
    return np.asarray(keep, dtype=np.int64)


def xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    """Centre-size boxes to corner boxes."""
    out = np.empty_like(xywh)
    half_w, half_h = xywh[:, 2] / 2, xywh[:, 3] / 2
    out[:, 0] = xywh[:, 0] - half_w
    out[:, 1] = xywh[:, 1] - half_h
    out[:, 2] = xywh[:, 0] + half_w
    out[:, 3] = xywh[:, 1] + half_h
    return out


def non_max_suppression(prediction: np.ndarray, conf_threshold: float = 0.25, iou_threshold: float = 0.7,
                        max_det: int = 300, agnostic: bool = False,
                        nc: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NMS over one image's raw head output of shape (4 + nc, N): xywh then class scores.

    Returns (xyxy Kx4 float32, confidence K float32, class_id K int64), best first.
    """
    if not 0.0 <= conf_threshold <= 1.0 or not 0.0 <= iou_threshold <= 1.0:
        raise ValueError(f"thresholds must be in 0..1, got conf={conf_threshold} iou={iou_threshold}")
    pred = np.asarray(prediction, dtype=np.float32)
    if pred.ndim != 2 or pred.shape[0] < 5:
        raise ValueError(f"expected a (4 + nc, N) prediction, got shape {pred.shape}")
    nc = nc or pred.shape[0] - 4
    scores_all = pred[4 : 4 + nc]  # nc x N: reduce along rows, in memory order
    # most frames have no score above the threshold: one reduction settles it (a NaN max takes the long way)
    if scores_all.max() <= conf_threshold:
        return _empty()
    # strict '>' as in ultralytics, so a threshold equal to a score drops it
    keep = np.flatnonzero(scores_all.max(axis=0) > conf_threshold)
    if not keep.size:
        return _empty()
    scores_kept = scores_all[:, keep]
    class_id = scores_kept.argmax(axis=0)
    conf = scores_kept[class_id, np.arange(keep.size)]
    xyxy = xywh_to_xyxy(pred[:4, keep].T)
    if len(conf) > MAX_NMS_BOXES:
        top = np.argsort(-conf, kind="stable")[:MAX_NMS_BOXES]
        xyxy, conf, class_id = xyxy[top], conf[top], class_id[top]
    # offsetting boxes by class keeps classes apart in one pass, the same float32 arithmetic as ultralytics
    offset = np.float32(0 if agnostic else MAX_WH_PX) * class_id.astype(np.float32)[:, None]
    kept = nms_indices(xyxy + offset, conf, iou_threshold, max_keep=max_det)
    return xyxy[kept], conf[kept], class_id[kept].astype(np.int64)


def end2end_filter(prediction: np.ndarray, conf_threshold: float = 0.25,
                   max_det: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of an end-to-end head output (N, 6: x1 y1 x2 y2 conf cls) above the threshold; no NMS needed."""
    pred = np.asarray(prediction, dtype=np.float32)
    if pred.ndim != 2 or pred.shape[1] < 6:
        raise ValueError(f"expected an (N, 6) end-to-end prediction, got shape {pred.shape}")
    rows = pred[pred[:, 4] > conf_threshold][:max_det]
    return rows[:, :4].copy(), rows[:, 4].copy(), rows[:, 5].astype(np.int64)


def _empty() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return _NO_BOXES


# shared by every frame without a box: the common case allocates nothing, and nobody can write into it
_NO_BOXES = (np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int64))
for _array in _NO_BOXES:
    _array.flags.writeable = False
