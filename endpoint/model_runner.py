"""The endpoint's current student: detection on each frame, and pushed updates swapped in."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from endpoint.config import EndpointConfig
from endpoint.protocol import Detection

log = logging.getLogger(__name__)


class ModelRunner:
    """Runs the current ONNX student (or nothing, when the endpoint only uploads)."""

    def __init__(self, config: EndpointConfig):
        self.config = config
        self._version = config.model.version if config.model.path else ""
        self._detector = self._load(Path(config.model.path)) if config.model.path else None

    def _load(self, path: Path):
        from endpoint.detector import OnnxDetector

        m = self.config.model
        return OnnxDetector(path, conf_threshold=m.conf_threshold, iou_threshold=m.iou_threshold)

    def version(self) -> str:
        return self._version

    def detect(self, image: np.ndarray) -> list[Detection]:
        detector = self._detector  # one read: a swap in between never splits a frame
        if detector is None:
            return []
        h, w = image.shape[:2]
        return detector.detect(image).to_protocol(w, h)

    def attach(self, link) -> None:
        """Listen for model pushes on the link (wired to the updater)."""
