"""Manifest signatures and model checks: what the endpoint accepts and why it refuses."""

from __future__ import annotations

import hashlib
import stat

import pytest
from cryptography.hazmat.primitives import serialization

from edge.signing import generate_keypair, load_private_key, sign, sign_bytes
from endpoint.wire.manifest import Manifest, canonical_bytes, parse_manifest
from endpoint.model.verify import (ModelRejected, check_target, load_public_key, sidecar_paths, verify_model,
                                   verify_stored)

MODEL = b"\x08\x07" + bytes(range(256)) * 40


def manifest_for(model: bytes, **over) -> Manifest:
    fields = dict(name="yolo11n-student", version="v0002", target="default", serial=2, parent_version="v0001",
                  format="onnx-int8",
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
    loaded = load_public_key(tmp_path / "key.hex")
    assert loaded.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw) == raw
    manifest = manifest_for(MODEL)
    assert verify_model(canonical_bytes(manifest), sign(manifest, private), MODEL, loaded) == manifest


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


def test_manifest_requires_a_target_and_a_positive_serial():
    fields = manifest_for(MODEL).model_dump()
    for missing in ("target", "serial"):
        with pytest.raises(ValueError, match=missing):
            Manifest(**{k: v for k, v in fields.items() if k != missing})
    with pytest.raises(ValueError):
        manifest_for(MODEL, serial=0)
    with pytest.raises(ValueError):
        manifest_for(MODEL, target="cam/1")


@pytest.mark.parametrize("target, ok", [("default", True), ("cam-1", True), ("cam-2", False), ("lab", False)])
def test_target_is_this_endpoint_or_its_fleet(target, ok):
    manifest = manifest_for(MODEL, target=target)
    if ok:
        assert check_target(manifest, "cam-1", "default") is None  # accepted: it raises ModelRejected otherwise
    else:
        with pytest.raises(ModelRejected, match=f"wrong target: signed for '{target}'"):
            check_target(manifest, "cam-1", "default")


def _store(tmp_path, private, manifest: Manifest, model: bytes):
    path = tmp_path / f"{manifest.version}.onnx"
    path.write_bytes(model)
    manifest_path, signature_path = sidecar_paths(path)
    manifest_path.write_bytes(canonical_bytes(manifest))
    signature_path.write_text(sign(manifest, private))
    return path


@pytest.mark.parametrize("case, reason", [
    ("good", None),
    ("flipped byte", "corrupted: sha256"),
    ("truncated", "truncated"),
    ("sidecar edited", "not signed by the edge key"),
    ("no signature file", "unreadable"),
    ("huge sidecar", "is over"),
    ("for another endpoint", "wrong target"),
])
def test_a_stored_model_is_rechecked_against_its_sidecar(keys, tmp_path, case, reason):
    private, public, _ = keys
    manifest = manifest_for(MODEL, target="cam-2" if case == "for another endpoint" else "cam-1")
    path = _store(tmp_path, private, manifest, MODEL)
    manifest_path, signature_path = sidecar_paths(path)
    if case == "flipped byte":
        path.write_bytes(MODEL[:500] + bytes([MODEL[500] ^ 1]) + MODEL[501:])
    elif case == "truncated":
        path.write_bytes(MODEL[:-1])
    elif case == "sidecar edited":
        manifest_path.write_bytes(canonical_bytes(manifest_for(MODEL, target="cam-1", serial=99)))
    elif case == "no signature file":
        signature_path.unlink()
    elif case == "huge sidecar":
        manifest_path.write_bytes(b" " * 10**6)
    if reason is None:
        assert verify_stored(path, public, "cam-1", "default") == manifest
    else:
        with pytest.raises(ModelRejected, match=reason):
            verify_stored(path, public, "cam-1", "default")
