"""Ed25519 keys of the edge and signatures over model manifests."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from endpoint.wire.manifest import Manifest, canonical_bytes

PRIVATE_KEY_FILE = "model_signing.key"
PUBLIC_KEY_FILE = "model_signing.pub"


def generate_keypair(directory: str | Path) -> tuple[Path, Path]:
    """Write a new PEM key pair into ``directory`` (private file mode 0600); refuse to overwrite."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    private_path, public_path = directory / PRIVATE_KEY_FILE, directory / PUBLIC_KEY_FILE
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    # O_EXCL: silently replacing a key would orphan every endpoint that trusts the old one.
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private_pem)
    public_path.write_bytes(public_pem)
    return private_path, public_path


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    """Read a PEM private key written by ``generate_keypair``."""
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} holds a {type(key).__name__}, not an Ed25519 private key")
    return key


def sign_bytes(data: bytes, private_key: Ed25519PrivateKey) -> str:
    """Ed25519 signature of ``data``, hex."""
    return private_key.sign(data).hex()


def sign(manifest: Manifest, private_key: Ed25519PrivateKey) -> str:
    """Sign the manifest's canonical bytes; the endpoint verifies exactly those bytes."""
    return sign_bytes(canonical_bytes(manifest), private_key)
