"""Install pushed students: pair announcement and bytes, verify, rebuild deltas, write, trial-load, ack, prune."""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from endpoint.model.slot import ModelSlot
from endpoint.wire import protocol
from endpoint.wire.delta import DeltaError, apply_delta
from endpoint.wire.durable_file import TMP_PREFIX, write_durably
from endpoint.wire.manifest import VERSION_PATTERN, Manifest, version_number
from endpoint.model.verify import (MANIFEST_SUFFIX, SIGNATURE_SUFFIX, ModelRejected, check_model_bytes,
                                   check_target, sidecar_paths, verify_manifest)
from endpoint.wire.protocol import Ack, ModelAnnouncement, ModelData, ProtocolError

log = logging.getLogger(__name__)

MAX_REASON_CHARS = 300
STORED_SUFFIXES = (".onnx", MANIFEST_SUFFIX, SIGNATURE_SUFFIX)


class ModelUpdater:
    """Handlers for the ``model`` and ``model_data`` topics; a refused push never touches the running model."""

    def __init__(self, slot: ModelSlot, models_dir: str | Path, public_key: Ed25519PublicKey,
                 send_ack: Callable[[Ack], None], endpoint_id: str, max_pending: int = 2, fleet: str = "default",
                 fallback_path: str | Path | None = None, on_swap: Callable[[], None] | None = None):
        self.slot = slot
        self.models_dir = Path(models_dir)
        self.models_dir.mkdir(parents=True, exist_ok=True)
        self.public_key = public_key
        self.send_ack = send_ack
        self.endpoint_id = endpoint_id
        self.fleet = fleet
        self.max_pending = max_pending  # model bytes wait in memory for their announcement, so few
        # The configured model: boot falls back to it when a stored one fails its check, so never pruned.
        self.fallback_path = Path(fallback_path) if fallback_path else None
        self.on_swap = on_swap
        self._announcements: OrderedDict[str, ModelAnnouncement] = OrderedDict()
        self._data: OrderedDict[str, ModelData] = OrderedDict()
        self._lock = threading.Lock()

    def on_announcement(self, payload: bytes | ModelAnnouncement) -> None:
        """Handle a ``model`` message (raw payload or decoded)."""
        try:
            message = payload if isinstance(payload, ModelAnnouncement) else protocol.decode(payload)
            if not isinstance(message, ModelAnnouncement):
                raise ProtocolError(f"expected a model announcement, got {message.kind!r}")
            self._check_addressee(message.endpoint_id)
        except Exception as exc:  # ProtocolError, or a payload that is not even bytes
            self._reject("", f"bad announcement: {exc}")
            return
        with self._lock:
            _remember(self._announcements, message.version, message, self.max_pending)
            self._install_if_paired(message.version)

    def on_model_data(self, payload: bytes | ModelData) -> None:
        """Handle a ``model_data`` message (raw payload or decoded)."""
        try:
            data = payload if isinstance(payload, ModelData) else protocol.decode_model_data(payload)
            self._check_addressee(data.header.endpoint_id)
        except Exception as exc:
            self._reject("", f"bad model_data: {exc}")
            return
        with self._lock:
            _remember(self._data, data.header.version, data, self.max_pending)
            self._install_if_paired(data.header.version)

    def _check_addressee(self, endpoint_id: str) -> None:
        if endpoint_id != self.endpoint_id:
            raise ProtocolError(f"addressed to {endpoint_id!r}, this is {self.endpoint_id!r}")

    def _install_if_paired(self, version: str) -> None:
        if version not in self._announcements or version not in self._data:
            return
        announcement, data = self._announcements.pop(version), self._data.pop(version)
        try:
            self._install(announcement, data)
        except ModelRejected as exc:
            self._reject(version, exc.reason)
        except Exception as exc:  # never let a push take the endpoint down
            log.exception("installing model %s failed", version)
            self._reject(version, f"internal error: {type(exc).__name__}: {exc}")

    def _install(self, announcement: ModelAnnouncement, data: ModelData) -> None:
        header = data.header
        if (header.encoding, header.parent_version) != (announcement.encoding, announcement.parent_version):
            raise ModelRejected("announcement and model_data disagree on encoding or parent")
        manifest_bytes = announcement.manifest.encode("utf-8")
        manifest = verify_manifest(manifest_bytes, announcement.signature, self.public_key)
        if manifest.version != announcement.version:
            raise ModelRejected(f"manifest is for {manifest.version}, announced as {announcement.version}")
        check_target(manifest, self.endpoint_id, self.fleet)
        running, running_serial, previous = self.slot.version, self.slot.serial, self.slot.model_path
        if manifest.version == running:
            log.info("model %s already runs; acking the repeated push", running)
            self._ack(Ack(endpoint_id=self.endpoint_id, model_version=running, ok=True, reason="already running"))
            return
        # A replayed old push is refused; a deliberate rollback has a newer serial. A starting model without a
        # signed sidecar has serial 0, but one named v0003 is the registry's v0003: nothing older replaces it.
        floor = max(running_serial, version_number(running))
        if manifest.serial <= floor:
            raise ModelRejected(f"not newer: serial {manifest.serial} ({manifest.version}) is not above the "
                                f"running serial {floor} ({running})")
        model_bytes = self._rebuild(header, data.payload, running, manifest.size_bytes)
        check_model_bytes(manifest, model_bytes)
        path = self._write(manifest, manifest_bytes, announcement.signature, model_bytes)
        try:
            self.slot.swap(path, manifest.version, manifest.serial)
        except Exception as exc:
            _unlink_version(path)
            raise ModelRejected(f"load failed: {type(exc).__name__}: {exc}") from None
        self._prune(keep={path, previous})
        log.info("model %s (%s, %d bytes) verified and running", manifest.version, header.encoding,
                 len(model_bytes))
        self._ack(Ack(endpoint_id=self.endpoint_id, model_version=manifest.version, ok=True))
        if self.on_swap is not None:
            try:
                self.on_swap()
            except Exception:
                log.exception("could not report the swap to %s", manifest.version)

    def _rebuild(self, header: protocol.ModelDataHeader, payload: bytes, running: str, size_bytes: int) -> bytes:
        if header.encoding == "full":
            return payload
        if header.parent_version != running:
            raise ModelRejected(f"delta is against {header.parent_version}, this endpoint runs {running}")
        try:
            return apply_delta(self.slot.model_path.read_bytes(), payload, size_bytes)
        except (DeltaError, OSError) as exc:
            raise ModelRejected(f"delta does not apply: {exc}") from None

    def _write(self, manifest: Manifest, manifest_bytes: bytes, signature: str, model_bytes: bytes) -> Path:
        path = self.models_dir / f"{manifest.version}.onnx"
        write_durably(path, model_bytes)
        # The signed sidecar lets a restarted endpoint re-verify the file it boots from.
        manifest_path, signature_path = sidecar_paths(path)
        write_durably(manifest_path, manifest_bytes)
        write_durably(signature_path, signature.encode("ascii"))
        return path

    def _prune(self, keep: set[Path]) -> None:
        """Keep the running model, the one before it and the configured one; delete every other stored file."""
        keep = {p.resolve() for p in keep | {self.slot.model_path, self.fallback_path} if p and p != Path("")}
        here = self.models_dir.resolve()
        kept_stems = {p.stem for p in keep if p.parent == here}
        for path in self.models_dir.iterdir():
            # Includes files of earlier runs and leftovers of a write cut short (kill -9, power loss).
            stem = stored_stem(path.name)
            doomed = path.name.startswith(TMP_PREFIX) or (stem is not None and stem not in kept_stems)
            if doomed and path.is_file() and path.resolve() not in keep:
                log.info("pruning %s", path.name)
                path.unlink(missing_ok=True)

    def _reject(self, version: str, reason: str) -> None:
        log.warning("refused model push %s: %s", version or "(unknown version)", reason)
        self._ack(Ack(endpoint_id=self.endpoint_id, model_version=version, ok=False,
                      reason=reason[:MAX_REASON_CHARS]))

    def _ack(self, ack: Ack) -> None:
        try:
            self.send_ack(ack)
        except Exception:
            log.exception("could not send the model ack for %s", ack.model_version)


def _remember(pending: OrderedDict, version: str, item, max_items: int) -> None:
    pending.pop(version, None)
    pending[version] = item
    while len(pending) > max_items:
        dropped, _ = pending.popitem(last=False)
        log.warning("dropping unpaired model push %s", dropped)


def stored_stem(name: str) -> str | None:
    """``v0003`` for ``v0003.onnx`` and its sidecars; None for names the updater never writes."""
    for suffix in STORED_SUFFIXES:
        stem = name[: -len(suffix)]
        if name.endswith(suffix) and re.match(VERSION_PATTERN, stem):
            return stem
    return None


def _unlink_version(path: Path) -> None:
    for p in (path, *sidecar_paths(path)):
        p.unlink(missing_ok=True)
