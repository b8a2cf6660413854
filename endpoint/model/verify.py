"""Check a model on the endpoint: Ed25519 signature of the manifest, its target, then size and sha256."""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from endpoint.wire.manifest import Manifest, parse_manifest

SIGNATURE_HEX_CHARS = 128
MAX_MANIFEST_BYTES = 64 * 1024  # a stored sidecar is read whole; a real one is under 2 KiB
MANIFEST_SUFFIX, SIGNATURE_SUFFIX = ".manifest.json", ".manifest.sig"


class ModelRejected(ValueError):
    """A pushed model that must not run; ``reason`` is short and goes into the ack."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    """Read the edge's public key: a PEM file or 64 hex characters of the raw key."""
    data = Path(path).read_bytes()
    if data.lstrip().startswith(b"-----BEGIN"):
        key = serialization.load_pem_public_key(data)
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError(f"{path} holds a {type(key).__name__}, not an Ed25519 public key")
        return key
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(data.decode("ascii").strip()))


def verify_manifest(manifest_bytes: bytes, signature_hex: str, public_key: Ed25519PublicKey) -> Manifest:
    """Check the signature over the manifest bytes as received, then parse them."""
    if not signature_hex:
        raise ModelRejected("unsigned: no signature")
    if len(signature_hex) != SIGNATURE_HEX_CHARS:
        raise ModelRejected(f"invalid signature: {len(signature_hex)} hex characters, expected {SIGNATURE_HEX_CHARS}")
    try:
        signature = bytes.fromhex(signature_hex)
    except ValueError:
        raise ModelRejected("invalid signature: not hex") from None
    try:
        public_key.verify(signature, manifest_bytes)
    except InvalidSignature:
        raise ModelRejected("invalid signature: manifest not signed by the edge key") from None
    try:
        return parse_manifest(manifest_bytes)
    except ValidationError as exc:  # signed by us yet malformed: an edge bug, still refused
        raise ModelRejected(f"invalid manifest: {exc.errors()[0]['msg']}") from None


def check_model_bytes(manifest: Manifest, model_bytes: bytes) -> None:
    """Refuse bytes that are not exactly the file the manifest describes."""
    if len(model_bytes) != manifest.size_bytes:
        kind = "truncated" if len(model_bytes) < manifest.size_bytes else "size mismatch"
        raise ModelRejected(f"{kind}: {len(model_bytes)} bytes, manifest says {manifest.size_bytes}")
    if hashlib.sha256(model_bytes).hexdigest() != manifest.sha256:
        raise ModelRejected("corrupted: sha256 does not match the manifest")


def verify_model(manifest_bytes: bytes, signature_hex: str, model_bytes: bytes,
                 public_key: Ed25519PublicKey) -> Manifest:
    """The whole check; returns the trusted manifest or raises ModelRejected(reason)."""
    manifest = verify_manifest(manifest_bytes, signature_hex, public_key)
    check_model_bytes(manifest, model_bytes)
    return manifest


def check_target(manifest: Manifest, endpoint_id: str, fleet: str) -> None:
    """Refuse a manifest signed for another endpoint or fleet."""
    if manifest.target not in (endpoint_id, fleet):
        raise ModelRejected(f"wrong target: signed for {manifest.target!r}, this is {endpoint_id!r} "
                            f"in fleet {fleet!r}")


def sidecar_paths(model_path: Path) -> tuple[Path, Path]:
    """``<stem>.manifest.json`` and ``<stem>.manifest.sig`` beside ``<stem>.onnx``."""
    return model_path.with_suffix(MANIFEST_SUFFIX), model_path.with_suffix(SIGNATURE_SUFFIX)


def verify_stored(model_path: str | Path, public_key: Ed25519PublicKey, endpoint_id: str, fleet: str) -> Manifest:
    """Re-check a stored model against its signed sidecar as at install: signature, target, size, sha256."""
    model_path = Path(model_path)
    manifest_path, signature_path = sidecar_paths(model_path)
    try:
        manifest_bytes = _read_bounded(manifest_path, MAX_MANIFEST_BYTES)
        signature = _read_bounded(signature_path, SIGNATURE_HEX_CHARS + 2).decode("ascii", "replace").strip()
        manifest = verify_manifest(manifest_bytes, signature, public_key)
        check_target(manifest, endpoint_id, fleet)
        size_bytes = model_path.stat().st_size
        if size_bytes != manifest.size_bytes:  # before reading: the file may be anything
            kind = "truncated" if size_bytes < manifest.size_bytes else "size mismatch"
            raise ModelRejected(f"{kind}: {size_bytes} bytes, manifest says {manifest.size_bytes}")
        check_model_bytes(manifest, model_path.read_bytes())
    except OSError as exc:
        raise ModelRejected(f"unreadable: {exc}") from None
    return manifest


def _read_bounded(path: Path, max_bytes: int) -> bytes:
    with open(path, "rb") as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ModelRejected(f"{path.name} is over {max_bytes} bytes")
    return data
