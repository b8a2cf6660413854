"""Run the tail half of a split detector on the edge and turn its output into detections."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from PIL import Image

from endpoint.model.detections import Detections
from endpoint.model.detector import DEFAULT_CONF_THRESHOLD, DEFAULT_IOU_THRESHOLD, DEFAULT_MAX_DET
from endpoint.model.letterbox import boxes_to_source, letterbox_geometry
from endpoint.model.nms import non_max_suppression
from endpoint.model.split_halves import open_split_half

log = logging.getLogger(__name__)

# An edge-only upload is shrunk to the model input; a 4096 x 4096 cap still leaves room for a whole camera frame.
MAX_IMAGE_PIXELS = 4096 * 4096


def raw_to_detections(raw: np.ndarray, source_hw: tuple[int, int], input_hw: tuple[int, int], nc: int,
                      conf_threshold: float, iou_threshold: float, max_det: int = DEFAULT_MAX_DET) -> Detections:
    """NMS on a (1, 4 + nc, N) detect output and boxes mapped to the source image, as ``OnnxDetector`` does."""
    xyxy, conf, cls = non_max_suppression(np.asarray(raw, np.float32)[0], conf_threshold, iou_threshold, max_det,
                                          nc=nc)
    if not len(conf):
        return Detections.empty()
    return Detections(boxes_to_source(xyxy, letterbox_geometry(source_hw, input_hw)), conf, cls)


class SplitTailRunner:
    """The edge half: the crossing tensors in, the full model's raw output (or detections) out."""

    def __init__(self, path: str | Path, threads: int = 0):
        self.path = Path(path)
        self._session, self.meta = open_split_half(self.path, "tail", threads)
        self._inputs = self._session.get_inputs()

    def run(self, tensors: Sequence[np.ndarray]) -> np.ndarray:
        """The raw detect output (1, 4 + nc, N) for the crossing tensors, in the head's output order."""
        if len(tensors) != len(self._inputs):
            raise ValueError(f"tail {self.path.name} takes {len(self._inputs)} tensors, got {len(tensors)}")
        feed = {}
        for spec, tensor in zip(self._inputs, tensors):
            if tuple(tensor.shape) != tuple(spec.shape):
                raise ValueError(f"tensor {spec.name} has shape {tensor.shape}, the tail expects {spec.shape}")
            feed[spec.name] = np.ascontiguousarray(tensor, dtype=np.float32)
        return self._session.run(None, feed)[0]

    def detect(self, tensors: Sequence[np.ndarray], source_hw: tuple[int, int],
               conf_threshold: float = DEFAULT_CONF_THRESHOLD, iou_threshold: float = DEFAULT_IOU_THRESHOLD,
               max_det: int = DEFAULT_MAX_DET) -> Detections:
        """Detections in source-image pixels for a frame of ``source_hw`` (height, width)."""
        return raw_to_detections(self.run(tensors), source_hw, self.meta.input_hw, len(self.meta.class_names),
                                 conf_threshold, iou_threshold, max_det)


def detect_jpeg(detector, jpeg: bytes, source_hw: tuple[int, int], max_pixels: int = MAX_IMAGE_PIXELS) -> Detections:
    """Edge-only: run the whole detector (an ``OnnxDetector`` or a callable) on a JPEG; boxes in source pixels."""
    image = decode_image(jpeg, max_pixels)
    dets = detector(image) if callable(detector) else detector.detect(image)
    if not len(dets):
        return dets
    # the endpoint shrank the frame before encoding; scale boxes back to the frame it holds
    sx, sy = source_hw[1] / image.shape[1], source_hw[0] / image.shape[0]
    return Detections(dets.xyxy * np.array([sx, sy, sx, sy], np.float32), dets.confidence, dets.class_id)


def decode_image(data: bytes, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """A BGR image from JPEG or PNG bytes; the header's size is checked before a pixel is allocated.

    OpenCV allocates what the header claims (a 835-byte JPEG can claim 60000 x 60000), so Pillow reads
    only the header first, and anything but JPEG or PNG is refused rather than handed to every OpenCV codec.
    """
    try:
        with Image.open(io.BytesIO(data), formats=["JPEG", "PNG"]) as header:
            width, height = header.size
    except Image.DecompressionBombError as exc:  # Pillow's own cap, far above ours, fires on open
        raise ValueError(f"image exceeds {max_pixels} pixels: {str(exc)[:200]}") from None
    except Exception as exc:  # Pillow raises UnidentifiedImageError, OSError, SyntaxError... on junk
        raise ValueError(f"not a JPEG or PNG image: {str(exc)[:200]}") from None
    if width * height > max_pixels:
        raise ValueError(f"image of {width}x{height} exceeds {max_pixels} pixels")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.shape[:2] != (height, width):
        raise ValueError("the image does not decode")
    return image


__all__ = ["MAX_IMAGE_PIXELS", "SplitTailRunner", "decode_image", "detect_jpeg", "raw_to_detections"]
