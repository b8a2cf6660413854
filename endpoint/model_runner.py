"""The endpoint's current student: detection on each frame, and signed pushes verified and swapped in."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from endpoint import protocol
from endpoint.config import EndpointConfig
from endpoint.detections import Detections
from endpoint.model_slot import ModelSlot
from endpoint.protocol import Ack, Detection

log = logging.getLogger(__name__)


class _NoModel:
    """Stands in until the first model arrives: the endpoint then only uploads."""

    def detect(self, image: np.ndarray) -> Detections:
        return Detections.empty()


class ModelRunner:
    """Runs the slot's current ONNX student; with a public key configured, it takes pushed models."""

    def __init__(self, config: EndpointConfig):
        self.config = config
        m = config.model
        self.slot = ModelSlot(self._load, m.path, m.version if m.path else "")
        self.updater = None

    def _load(self, path: Path):
        if path == Path(""):
            return _NoModel()
        from endpoint.detector import OnnxDetector

        m = self.config.model
        return OnnxDetector(path, conf_threshold=m.conf_threshold, iou_threshold=m.iou_threshold)

    def version(self) -> str:
        return self.slot.version

    def detect(self, image: np.ndarray) -> list[Detection]:
        h, w = image.shape[:2]
        return self.slot.detect(image).to_protocol(w, h)

    def attach(self, link) -> None:
        """Take model pushes from the link when a public key says whose signatures to trust."""
        m = self.config.model
        if not m.public_key:
            log.info("no public key configured: model pushes are refused")
            return
        from endpoint.model_verify import load_public_key
        from endpoint.updater import ModelUpdater

        def send_ack(ack: Ack) -> None:
            link.publish(protocol.FEATURE_ACK, protocol.encode(ack), qos=1)

        self.updater = ModelUpdater(self.slot, m.models_dir, load_public_key(m.public_key), send_ack,
                                    self.config.endpoint_id)
        link.on(protocol.FEATURE_MODEL, self.updater.on_announcement)
        link.on(protocol.FEATURE_MODEL_DATA, self.updater.on_model_data)
