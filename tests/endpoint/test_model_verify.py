"""Manifest signatures and model checks: what the endpoint accepts and why it refuses."""

from __future__ import annotations

import hashlib
import stat

import pytest
from cryptography.hazmat.primitives import serialization

from edge.signing import generate_keypair, load_private_key, sign, sign_bytes
from endpoint.model_manifest import Manifest, canonical_bytes, parse_manifest
from endpoint.model_verify import ModelRejected, load_public_key, verify_model

MODEL = b"\x08\x07" + bytes(range(256)) * 40


def manifest_for(model: bytes, **over) -> Manifest:
    fields = dict(name="yolo11n-student", version="v0002", parent_version="v0001", format="onnx-int8",
                  sha256=hashlib.sha256(model).hexdigest(), size_bytes=len(model), input_size=(96, 128),
                  class_names=["person", "car"], metrics={"map50": 0.41}, created=1795000000.5)
    fields.update(over)
    return Manifest(**fields)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    private_path, public_path = generate_keypair(tmp_path_factory.mktemp("keys"))
    return load_private_key(private_path), load_public_key(public_path), private_path


def test_keypair_files(keys, tmp_path):
    _, _, private_path = keys
    assert stat.S_IMODE(private_path.stat().st_mode) == 0o600
    with pytest.raises(FileExistsError):
        generate_keypair(private_path.parent)


def test_canonical_bytes_are_sorted_compact_and_round_trip():
    manifest = manifest_for(MODEL)
    data = canonical_bytes(manifest)
    assert b" " not in data and data.startswith(b'{"class_names":["person","car"],"created":1795000000.5')
    assert parse_manifest(data) == manifest and canonical_bytes(parse_manifest(data)) == data


def test_a_good_model_is_accepted(keys):
    private, public, _ = keys
    manifest = manifest_for(MODEL)
    assert verify_model(canonical_bytes(manifest), sign(manifest, private), MODEL, public) == manifest


def test_a_raw_hex_public_key_works_too(keys, tmp_path):
    private, public, _ = keys
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    (tmp_path / "key.hex").write_text(raw.hex() + "\n")
    manifest = manifest_for(MODEL)
    verify_model(canonical_bytes(manifest), sign(manifest, private), MODEL, load_public_key(tmp_path / "key.hex"))


def _other_key_signature(manifest: Manifest, tmp_path) -> str:
    return sign(manifest, load_private_key(generate_keypair(tmp_path)[0]))


@pytest.mark.parametrize("case, reason", [
    ("unsigned", "unsigned"),
    ("not hex", "not hex"),
    ("short signature", "hex characters"),
    ("wrong key", "not signed by the edge key"),
    ("manifest edited after signing", "not signed by the edge key"),
    ("truncated", "truncated: 10142 bytes, manifest says 10242"),
    ("longer", "size mismatch"),
    ("corrupted", "corrupted: sha256"),
    ("signed garbage manifest", "invalid manifest"),
])
def test_bad_models_are_refused_with_a_reason(keys, tmp_path, case, reason):
    private, public, _ = keys
    manifest = manifest_for(MODEL)
    manifest_bytes, signature, model = canonical_bytes(manifest), sign(manifest, private), MODEL
    if case == "unsigned":
        signature = ""
    elif case == "not hex":
        signature = "zz" * 64
    elif case == "short signature":
        signature = signature[:-2]
    elif case == "wrong key":
        signature = _other_key_signature(manifest, tmp_path)
    elif case == "manifest edited after signing":
        manifest_bytes = canonical_bytes(manifest_for(MODEL, metrics={"map50": 0.99}))
    elif case == "truncated":
        model = MODEL[:-100]
    elif case == "longer":
        model = MODEL + b"\x00"
    elif case == "corrupted":
        model = MODEL[:500] + bytes([MODEL[500] ^ 0xFF]) + MODEL[501:]
    elif case == "signed garbage manifest":
        manifest_bytes = b'{"name": "x"}'
        signature = sign_bytes(manifest_bytes, private)
    with pytest.raises(ModelRejected, match=reason) as info:
        verify_model(manifest_bytes, signature, model, public)
    assert info.value.reason == str(info.value)


def test_manifest_forbids_extra_fields_and_nan_metrics():
    with pytest.raises(ValueError):
        manifest_for(MODEL, extra=1)
    with pytest.raises(ValueError):
        manifest_for(MODEL, metrics={"map50": float("nan")})
