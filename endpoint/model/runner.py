"""The endpoint's current student: boots the newest model it verified, detects, and takes signed pushes."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple

import numpy as np

from endpoint.config import EndpointConfig
from endpoint.model.detections import Detections
from endpoint.model.letterbox import PreparedFrame
from endpoint.model.slot import ModelSlot
from endpoint.wire import protocol
from endpoint.wire.protocol import Ack, Detection

log = logging.getLogger(__name__)


class _NoModel:
    """Stands in until the first model arrives: the endpoint then only uploads."""

    def detect(self, image: np.ndarray) -> Detections:
        return Detections.empty()


class BootModel(NamedTuple):
    """A model the endpoint may boot, and the signed serial that orders it."""

    path: Path
    version: str
    serial: int


class ModelRunner:
    """Runs the slot's current ONNX student; with a public key configured, it takes pushed models."""

    def __init__(self, config: EndpointConfig):
        self.config = config
        self.public_key = None
        if config.model.public_key:
            from endpoint.model.verify import load_public_key

            self.public_key = load_public_key(config.model.public_key)
        self.slot = self._boot()
        self.updater = None

    def _load(self, path: Path):
        if path == Path(""):
            return _NoModel()
        from endpoint.model.detector import OnnxDetector

        m = self.config.model
        return OnnxDetector(path, conf_threshold=m.conf_threshold, iou_threshold=m.iou_threshold)

    def _boot(self) -> ModelSlot:
        """The newest stored model that passes its signed check, if newer than the configured one."""
        configured = self._configured()
        stored, failures = self._stored_models(configured)
        booted, slot = configured, None
        for choice in stored:
            try:
                slot, booted = ModelSlot(self._load, choice.path, choice.version, choice.serial), choice
                break
            except Exception as exc:  # verified yet unloadable (e.g. an onnxruntime upgrade): try the next
                failures.append((choice.version, f"load failed: {type(exc).__name__}: {exc}"))
        if slot is None:
            slot = ModelSlot(self._load, configured.path, configured.version, configured.serial)
        what = (f"stored model {booted.version}" if booted is not configured
                else f"the configured model {configured.version or '(none)'}")
        for name, reason in failures:
            log.warning("stored model %s fails its check: %s; booting %s", name, reason, what)
        if booted is configured and not self.config.model.path:
            log.info("booting with no model (model.path is empty): no detections until the edge pushes one")
        else:
            log.info("booting %s (serial %d) from %s", what, booted.serial, booted.path)
        return slot

    def _configured(self) -> BootModel:
        m = self.config.model
        if not m.path:
            return BootModel(Path(""), "", 0)
        configured = BootModel(Path(m.path), m.version, 0)
        from endpoint.model.verify import ModelRejected, sidecar_paths, verify_stored

        if self.public_key is None or not sidecar_paths(configured.path)[0].exists():
            return configured  # a starting model without a signed sidecar has serial 0
        try:
            manifest = verify_stored(configured.path, self.public_key, self.config.endpoint_id, m.fleet)
        except ModelRejected as exc:
            log.warning("the configured model %s fails its sidecar's check: %s; it runs with serial 0",
                        configured.path, exc.reason)
            return configured
        return BootModel(configured.path, manifest.version, manifest.serial)

    def _stored_models(self, configured: BootModel) -> tuple[list[BootModel], list[tuple[str, str]]]:
        """Stored models newer than ``configured`` that pass their check (newest first), and why others fail."""
        models_dir = Path(self.config.model.models_dir)
        if self.public_key is None or not models_dir.is_dir():
            return [], []  # without the key nothing stored can be trusted
        from endpoint.model.verify import MANIFEST_SUFFIX, ModelRejected, verify_stored

        configured_file = configured.path.resolve() if self.config.model.path else None
        found, failures = [], []
        for manifest_path in sorted(models_dir.glob(f"*{MANIFEST_SUFFIX}")):
            stem = manifest_path.name[: -len(MANIFEST_SUFFIX)]
            model_path = manifest_path.with_name(f"{stem}.onnx")
            if model_path.resolve() == configured_file:
                continue
            try:
                manifest = verify_stored(model_path, self.public_key, self.config.endpoint_id,
                                         self.config.model.fleet)
                if manifest.version != stem:
                    raise ModelRejected(f"renamed: the file is {stem}, its manifest is for {manifest.version}")
            except ModelRejected as exc:
                failures.append((stem, exc.reason))
                continue
            if manifest.serial > configured.serial:
                found.append(BootModel(model_path, manifest.version, manifest.serial))
        return sorted(found, key=lambda b: b.serial, reverse=True), failures

    def version(self) -> str:
        return self.slot.version

    def prepare(self, image: np.ndarray) -> np.ndarray | PreparedFrame:
        """The current model's letterbox of ``image``, for the capture thread (the image itself without a model)."""
        detector, _ = self.slot.current()
        prepare = getattr(detector, "prepare", None)
        return image if prepare is None else prepare(image)

    def detect(self, image: np.ndarray | PreparedFrame) -> list[Detection]:
        """Detections in a frame or in what ``prepare`` made of it, boxes normalized to the frame."""
        h, w = (image.image if isinstance(image, PreparedFrame) else image).shape[:2]
        return self.slot.detect(image).to_protocol(w, h)

    def attach(self, link) -> None:
        """Take model pushes from the link when a public key says whose signatures to trust."""
        m = self.config.model
        if self.public_key is None:
            log.info("no public key configured: model pushes are refused")
            return
        from endpoint.model.updater import ModelUpdater

        def send_ack(ack: Ack) -> None:
            link.publish(protocol.FEATURE_ACK, protocol.encode(ack), qos=1)

        def report_swap() -> None:
            # The retained status is what the edge believes about this endpoint, so it follows every swap.
            link.publish_status("online")

        self.updater = ModelUpdater(self.slot, m.models_dir, self.public_key, send_ack, self.config.endpoint_id,
                                    fleet=m.fleet, fallback_path=m.path or None, on_swap=report_swap)
        link.on(protocol.FEATURE_MODEL, self.updater.on_announcement)
        link.on(protocol.FEATURE_MODEL_DATA, self.updater.on_model_data)
