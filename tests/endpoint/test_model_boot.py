"""The endpoint boots the newest model it verified and stored, re-checked against its signed sidecar."""

from __future__ import annotations

import hashlib
import logging
import shutil

import pytest

from edge.publisher import ModelPublisher
from edge.signing import generate_keypair, load_private_key, sign
from endpoint.config import EndpointConfig
from endpoint.model.runner import ModelRunner
from endpoint.wire import protocol
from endpoint.wire.manifest import Manifest, canonical_bytes


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return generate_keypair(tmp_path_factory.mktemp("keys"))


def manifest_for(model: bytes, version: str, target: str = "cam-1") -> Manifest:
    return Manifest(name="student", version=version, target=target, serial=int(version[1:]), format="onnx-int8",
                    sha256=hashlib.sha256(model).hexdigest(), size_bytes=len(model), input_size=(64, 64),
                    created=1795000000.0)


class Endpoint:
    """A models_dir holding the configured v0001 (no sidecar) and stored versions with their signed sidecars."""

    def __init__(self, tmp_path, keys, push_models, configured: bool = True):
        private_path, self.public_path = keys
        self.private = load_private_key(private_path)
        self.models_dir = tmp_path / "models"
        self.models_dir.mkdir()
        self.configured = self.models_dir / "v0001.onnx"
        shutil.copy(push_models.base, self.configured)
        self.with_configured = configured
        self.push_models = push_models

    def store(self, version: str, model: bytes, target: str = "cam-1", at=None):
        at = at or self.models_dir / f"{version}.onnx"
        manifest = manifest_for(model, version, target)
        at.write_bytes(model)
        at.with_suffix(".manifest.json").write_bytes(canonical_bytes(manifest))
        at.with_suffix(".manifest.sig").write_text(sign(manifest, self.private))
        return at

    def config(self, public_key: bool = True) -> EndpointConfig:
        return EndpointConfig.model_validate({"endpoint_id": "cam-1", "model": {
            "path": str(self.configured) if self.with_configured else "", "version": "v0001",
            "models_dir": str(self.models_dir), "public_key": str(self.public_path) if public_key else ""}})

    def boot(self, **kw) -> ModelRunner:
        return ModelRunner(self.config(**kw))


def _flip(path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _running(runner: ModelRunner) -> tuple[str, int, str]:
    return runner.version(), runner.slot.serial, runner.slot.model_path.name


def test_boots_the_newest_stored_model(tmp_path, keys, push_models):
    ep = Endpoint(tmp_path, keys, push_models)
    ep.store("v0002", push_models.few_changed.read_bytes())
    ep.store("v0003", push_models.all_changed.read_bytes())
    assert _running(ep.boot()) == ("v0003", 3, "v0003.onnx")


def test_a_tampered_stored_model_is_skipped_with_a_logged_reason(tmp_path, keys, push_models, caplog):
    ep = Endpoint(tmp_path, keys, push_models)
    ep.store("v0002", push_models.few_changed.read_bytes())
    _flip(ep.store("v0003", push_models.all_changed.read_bytes()))
    with caplog.at_level(logging.WARNING, logger="endpoint.model.runner"):
        runner = ep.boot()
    assert _running(runner) == ("v0002", 2, "v0002.onnx")
    assert ("stored model v0003 fails its check: corrupted: sha256 does not match the manifest; "
            "booting stored model v0002") in caplog.text


@pytest.mark.parametrize("damage, reason", [
    ("flip", "corrupted: sha256"),
    ("truncate", "truncated"),
    ("other target", "wrong target: signed for 'cam-2'"),
    ("forged sidecar", "invalid signature: manifest not signed by the edge key"),
    ("signed but not a model", "load failed"),
])
def test_when_no_stored_model_passes_the_configured_one_boots(tmp_path, keys, push_models, caplog, damage, reason):
    ep = Endpoint(tmp_path, keys, push_models)
    model = push_models.few_changed.read_bytes()
    if damage == "signed but not a model":
        model = b"not an onnx model" * 64
    path = ep.store("v0002", model, target="cam-2" if damage == "other target" else "cam-1")
    if damage == "flip":
        _flip(path)
    elif damage == "truncate":
        path.write_bytes(model[:-100])
    elif damage == "forged sidecar":
        path.with_suffix(".manifest.json").write_bytes(canonical_bytes(manifest_for(model, "v0009")))
    with caplog.at_level(logging.WARNING, logger="endpoint.model.runner"):
        runner = ep.boot()
    assert _running(runner) == ("v0001", 0, "v0001.onnx")
    assert f"stored model v0002 fails its check: {reason}" in caplog.text
    assert "booting the configured model v0001" in caplog.text


def test_a_configured_model_with_its_sidecar_keeps_its_serial_and_beats_older_stored_ones(tmp_path, keys,
                                                                                          push_models):
    ep = Endpoint(tmp_path, keys, push_models)
    ep.store("v0002", push_models.few_changed.read_bytes())
    ep.configured = ep.store("v0004", push_models.base.read_bytes(), at=tmp_path / "v0004.onnx")
    assert _running(ep.boot()) == ("v0004", 4, "v0004.onnx")


def test_without_a_public_key_stored_models_are_not_trusted(tmp_path, keys, push_models):
    ep = Endpoint(tmp_path, keys, push_models)
    ep.store("v0002", push_models.few_changed.read_bytes())
    assert _running(ep.boot(public_key=False)) == ("v0001", 0, "v0001.onnx")


def test_an_upload_only_endpoint_boots_the_model_it_was_pushed(tmp_path, keys, push_models):
    ep = Endpoint(tmp_path, keys, push_models, configured=False)
    ep.store("v0002", push_models.few_changed.read_bytes())
    assert _running(ep.boot()) == ("v0002", 2, "v0002.onnx")


def test_an_endpoint_with_no_model_says_so_at_boot_and_at_its_first_swap(tmp_path, keys, push_models, caplog):
    ep = Endpoint(tmp_path, keys, push_models, configured=False)
    with caplog.at_level(logging.INFO):
        runner = ep.boot()
        assert "booting with no model (model.path is empty)" in caplog.text
        assert "from ." not in caplog.text
        runner.slot.swap(push_models.base, "v0002", 2)
    assert f"model v0002 swapped in for no model ({push_models.base})" in caplog.text


class FakeLink:
    """The MqttLink surface ModelRunner uses: handlers, publish, publish_status."""

    def __init__(self):
        self.handlers, self.sent, self.statuses = {}, [], []

    def on(self, feature, handler):
        self.handlers[feature] = handler

    def publish(self, feature, payload, qos=1, retain=False):
        self.sent.append((feature, protocol.decode(payload)))

    def publish_status(self, state):
        self.statuses.append((state, self.runner.version()))


def test_a_swap_refreshes_the_retained_status(tmp_path, keys, push_models):
    ep = Endpoint(tmp_path, keys, push_models)
    runner, link = ep.boot(), FakeLink()
    link.runner = runner
    runner.attach(link)
    model = push_models.few_changed.read_bytes()
    manifest = manifest_for(model, "v0002")
    publisher = ModelPublisher(lambda topic, payload: link.handlers[protocol.parse_topic(topic)[1]](payload))
    publisher.push("cam-1", manifest, sign(manifest, ep.private), model)
    assert [(f, a.model_version, a.ok) for f, a in link.sent] == [("ack", "v0002", True)]
    assert link.statuses == [("online", "v0002")]
    assert _running(ModelRunner(ep.config())) == ("v0002", 2, "v0002.onnx")  # and a restart boots it
