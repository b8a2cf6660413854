"""Ed25519 keys of the edge and signatures over model manifests."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from endpoint.wire.durable_file import TMP_PREFIX, fsync_dir, write_durably
from endpoint.wire.manifest import Manifest, canonical_bytes

PRIVATE_KEY_FILE = "model_signing.key"
PUBLIC_KEY_FILE = "model_signing.pub"


def generate_keypair(directory: str | Path) -> tuple[Path, Path]:
    """Write a new PEM key pair into ``directory`` (private file mode 0600); refuse to overwrite.

    A kill at any point leaves no private key (the next start makes a pair), or a whole pair: the public half is
    written first, and the private file appears by a link of a complete, fsynced temp file.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    private_path, public_path = directory / PRIVATE_KEY_FILE, directory / PUBLIC_KEY_FILE
    for stale in directory.glob(TMP_PREFIX + "*"):  # a private key a killed start never linked into place
        stale.unlink(missing_ok=True)
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    write_durably(public_path, public_pem_of(key))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=TMP_PREFIX)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(private_pem)
            fh.flush()
            os.fsync(fh.fileno())
        # a link fails on an existing name: silently replacing a key would orphan every endpoint that trusts it
        os.link(tmp, private_path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    fsync_dir(directory)
    return private_path, public_path


def public_pem_of(key: Ed25519PrivateKey) -> bytes:
    """The PEM public half of ``key``: what endpoints are given to verify pushes."""
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


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
