"""mAP of an exact model file on a labelled held-out set, and a label-free teacher agreement."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from edge.map_metric import MapResult, MeanAveragePrecision
from edge.yolo_dataset import LabelledImage

log = logging.getLogger(__name__)

EVAL_CONF = 0.001  # low, as in ultralytics val: mAP integrates over the whole precision-recall curve
EVAL_IOU = 0.7


def decode_image(image: np.ndarray | bytes) -> np.ndarray:
    """A BGR array from an array or encoded JPEG/PNG bytes."""
    if isinstance(image, np.ndarray):
        return image
    decoded = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_COLOR)
    if decoded is None:
        raise ValueError("image bytes could not be decoded")
    return decoded


def _pixels(boxes: np.ndarray, image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4) * [w, h, w, h]


def evaluate_onnx(onnx_path: str | Path, items: Sequence[LabelledImage], conf: float = EVAL_CONF,
                  iou: float = EVAL_IOU) -> MapResult:
    """mAP50 and mAP50-95 of the ONNX file as the endpoint runs it (``OnnxDetector``)."""
    from endpoint.model.detector import OnnxDetector

    detector = OnnxDetector(onnx_path, conf_threshold=conf, iou_threshold=iou)
    metric = MeanAveragePrecision()
    for item in items:
        image = decode_image(item.image)
        dets = detector.detect(image)
        metric.update(dets.xyxy, dets.confidence, dets.class_id, _pixels(item.boxes, image), item.classes)
    result = metric.compute()
    log.info("evaluate %s: mAP50 %.3f mAP50-95 %.3f on %d images", Path(onnx_path).name, result.map50,
             result.map50_95, len(items))
    return result


def predict_pt(weights: str | Path, images: Sequence[np.ndarray], imgsz: int, conf: float,
               iou: float = EVAL_IOU, batch: int = 16) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(pixel xyxy boxes, scores, classes) per image from an ultralytics .pt model."""
    from edge.training import ultralytics_yolo

    model = ultralytics_yolo()(str(weights))
    out = []
    for start in range(0, len(images), batch):
        results = model.predict(list(images[start : start + batch]), imgsz=imgsz, conf=conf, iou=iou, device="cpu",
                                verbose=False)
        for res in results:
            b = res.boxes
            out.append((b.xyxy.cpu().numpy(), b.conf.cpu().numpy(), b.cls.cpu().numpy().astype(np.int64)))
    return out


def evaluate_pt(weights: str | Path, items: Sequence[LabelledImage], imgsz: int, conf: float = EVAL_CONF) -> MapResult:
    """mAP of an ultralytics .pt model (the teacher), with the same metric as the ONNX students."""
    images = [decode_image(item.image) for item in items]
    metric = MeanAveragePrecision()
    for item, image, (boxes, scores, classes) in zip(items, images, predict_pt(weights, images, imgsz, conf)):
        metric.update(boxes, scores, classes, _pixels(item.boxes, image), item.classes)
    return metric.compute()


def agreement(student_onnx: str | Path, teacher_pt: str | Path, images: Sequence[np.ndarray | bytes], imgsz: int,
              teacher_conf: float = 0.4) -> MapResult | None:
    """Label-free estimate: the student's mAP against the teacher's pseudo-labels (teacher boxes >= teacher_conf).

    None when no frame decodes or the teacher finds nothing: a 0.0 would read as a drop in agreement (a drift).
    """
    from endpoint.model.detector import OnnxDetector

    decoded = []
    for im in images:  # uploaded frames: ingest checked their JPEG structure, not their pixels
        try:
            decoded.append(decode_image(im))
        except ValueError:
            log.warning("agreement: an uploaded frame does not decode; left out")
    detector = OnnxDetector(student_onnx, conf_threshold=EVAL_CONF, iou_threshold=EVAL_IOU)
    metric = MeanAveragePrecision()
    for image, (t_boxes, _, t_classes) in zip(decoded, predict_pt(teacher_pt, decoded, imgsz, teacher_conf)):
        dets = detector.detect(image)
        metric.update(dets.xyxy, dets.confidence, dets.class_id, t_boxes, t_classes)
    result = metric.compute()
    if not result.ground_truth_boxes:
        log.warning("agreement: the teacher found nothing in %d decodable frames of %d; no estimate", len(decoded),
                    len(images))
        return None
    return result


__all__ = ["agreement", "decode_image", "evaluate_onnx", "evaluate_pt", "predict_pt"]
