"""Signed student versions in the object store: ``models/<name>/<version>/{model.onnx,manifest.json,manifest.sig}``."""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import Literal, NamedTuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.signing import sign
from edge.store.base import ObjectStore, StoreError
from endpoint.wire.manifest import VERSION_RE, Manifest, canonical_bytes, parse_manifest, version_number

log = logging.getLogger(__name__)

MODELS_PREFIX = "models"


class ModelRecord(NamedTuple):
    """One stored version: the manifest, the model file and the hex signature of the manifest."""

    manifest: Manifest
    model_bytes: bytes
    signature: str


def version_name(number: int) -> str:
    """``v0001``, ``v0002``, ...: fixed width so names sort like numbers up to 9999."""
    return f"v{number:04d}"


class ModelRegistry:
    """Publishes and reads signed model versions; version numbers only grow, and ``prune`` drops old ones."""

    def __init__(self, store: ObjectStore, private_key: Ed25519PrivateKey):
        self.store = store
        self.private_key = private_key

    def _key(self, name: str, version: str, leaf: str) -> str:
        return f"{MODELS_PREFIX}/{name}/{version}/{leaf}"

    def versions(self, name: str) -> list[str]:
        """Complete versions of ``name``, oldest first (a version counts once its signature is stored)."""
        found = []
        for key in self.store.list(f"{MODELS_PREFIX}/{name}/"):
            parts = key.split("/")
            if len(parts) == 4 and parts[3] == "manifest.sig" and VERSION_RE.match(parts[2]):
                found.append(parts[2])
        return sorted(found, key=version_number)

    def latest(self, name: str) -> Manifest | None:
        """The newest complete version's manifest, or None."""
        versions = self.versions(name)
        return self.manifest(name, versions[-1]) if versions else None

    def manifest(self, name: str, version: str) -> Manifest:
        return parse_manifest(self.store.get(self._key(name, version, "manifest.json")))

    def get(self, name: str, version: str) -> ModelRecord:
        """Manifest, model bytes and signature; raises StoreError if the stored file does not match."""
        manifest = self.manifest(name, version)
        model_bytes = self.store.get(self._key(name, version, "model.onnx"))
        if len(model_bytes) != manifest.size_bytes or hashlib.sha256(model_bytes).hexdigest() != manifest.sha256:
            raise StoreError(f"stored {name}/{version} does not match its manifest")
        signature = self.store.get(self._key(name, version, "manifest.sig")).decode("ascii").strip()
        return ModelRecord(manifest, model_bytes, signature)

    def publish(self, name: str, model_path: str | Path, *, format: Literal["onnx-int8", "onnx-fp32"],
                input_size: tuple[int, int], class_names: list[str], metrics: dict[str, float] | None = None,
                parent_version: str | None = None, created: float | None = None, fleet: str = "default") -> Manifest:
        """Store the file as the next version of ``name``, signed for ``fleet`` (a group or one endpoint id).

        The version number is also the manifest's serial, so endpoints can refuse anything not newer;
        the parent defaults to the latest version.
        """
        if "/" in name or not name.strip():
            raise ValueError(f"invalid model name {name!r}")
        model_bytes = Path(model_path).read_bytes()
        existing = self.versions(name)
        number = version_number(existing[-1]) + 1 if existing else 1
        manifest = Manifest(
            name=name, version=version_name(number), target=fleet, serial=number,
            parent_version=(existing[-1] if existing else "") if parent_version is None else parent_version,
            format=format, sha256=hashlib.sha256(model_bytes).hexdigest(), size_bytes=len(model_bytes),
            input_size=input_size, class_names=class_names, metrics=metrics or {},
            created=time.time() if created is None else created)
        signature = sign(manifest, self.private_key)
        self.store.put(self._key(name, manifest.version, "model.onnx"), model_bytes)
        self.store.put(self._key(name, manifest.version, "manifest.json"), canonical_bytes(manifest),
                       content_type="application/json")
        # Written last: a crash before this leaves an incomplete version that versions() skips.
        self.store.put(self._key(name, manifest.version, "manifest.sig"), signature.encode("ascii"),
                       content_type="text/plain")
        log.info("published %s %s for %s (%d bytes, parent %s)", name, manifest.version, fleet, len(model_bytes),
                 manifest.parent_version or "-")
        return manifest

    def prune(self, name: str, keep: set[str], keep_newest: int) -> list[str]:
        """Delete the versions of ``name`` outside ``keep``, the first and the newest ``keep_newest`` complete ones;
        the deleted, oldest first. The signature goes first, so a prune cut short leaves no version half there, only
        files no version counts (removed by the next prune). Versions above the newest complete one are left alone:
        a publish may be writing them."""
        by_version: dict[str, list[str]] = {}
        for key in self.store.list(f"{MODELS_PREFIX}/{name}/"):
            parts = key.split("/")
            if len(parts) == 4 and VERSION_RE.match(parts[2]):
                by_version.setdefault(parts[2], []).append(key)
        complete = self.versions(name)
        if not complete:
            return []
        spared = {*keep, complete[0], *complete[-keep_newest:]} if keep_newest > 0 else {*keep, complete[0]}
        newest = version_number(complete[-1])
        doomed = sorted((v for v in by_version if v not in spared and version_number(v) < newest), key=version_number)
        for version in doomed:
            leaves = sorted(by_version[version], key=lambda key: not key.endswith("/manifest.sig"))
            for key in leaves:
                self.store.delete(key)
        if doomed:
            log.info("pruned %d versions of %s (%s .. %s): no endpoint runs or is due them", len(doomed), name,
                     doomed[0], doomed[-1])
        return doomed

