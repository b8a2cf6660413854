"""The endpoint updater: good pushes swap and ack ok; bad ones are refused with a reason and change nothing."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest

from edge.publisher import ModelPublisher
from edge.signing import generate_keypair, load_private_key, sign
from endpoint.model.slot import ModelSlot
from endpoint.model.updater import ModelUpdater
from endpoint.model.verify import load_public_key
from endpoint.wire import protocol
from endpoint.wire.manifest import Manifest, canonical_bytes
from tests.push_fixtures import IMAGE, OrtDetector

ENDPOINT = "cam-1"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    private_path, public_path = generate_keypair(tmp_path_factory.mktemp("keys"))
    return load_private_key(private_path), load_public_key(public_path)


def signed(private_key, model: bytes, version: str, parent: str = "v0001", target: str = ENDPOINT,
           serial: int | None = None) -> tuple[Manifest, str]:
    """A manifest whose serial is its version number unless given."""
    manifest = Manifest(name="yolo11n-student", version=version, parent_version=parent, format="onnx-int8",
                        target=target, serial=int(version[1:]) if serial is None else serial,
                        sha256=hashlib.sha256(model).hexdigest(), size_bytes=len(model), input_size=(64, 64),
                        class_names=[], metrics={"map50": 0.1}, created=1795000000.0)
    return manifest, sign(manifest, private_key)


class Rig:
    """An endpoint (slot + updater on v0001) wired to a publisher through an in-memory 'broker'."""

    def __init__(self, push_models, keys, tmp_path, data_first: bool = False, fleet: str = "default",
                 start: tuple[str, int] = ("v0001", 0)):
        self.models, (self.private, public) = push_models, keys
        self.models_dir = tmp_path / "models"
        self.models_dir.mkdir(exist_ok=True)
        self.configured = self.models_dir / "v0001.onnx"
        shutil.copy(push_models.base, self.configured)
        version, serial = start
        self.slot = ModelSlot(OrtDetector, self.models_dir / f"{version}.onnx", version, serial)
        self.acks: list[protocol.Ack] = []
        self.swaps_reported: list[str] = []
        self.updater = ModelUpdater(self.slot, self.models_dir, public, self.acks.append, ENDPOINT, fleet=fleet,
                                    fallback_path=self.configured,
                                    on_swap=lambda: self.swaps_reported.append(self.slot.version))
        self.tamper = lambda feature, payload: payload
        self.data_first = data_first
        self._held: list[bytes] = []
        self.publisher = ModelPublisher(self.route)

    def route(self, topic: str, payload: bytes) -> None:
        endpoint_id, feature = protocol.parse_topic(topic)
        assert endpoint_id == ENDPOINT
        payload = self.tamper(feature, payload)
        if feature == protocol.FEATURE_MODEL and self.data_first:
            self._held.append(payload)  # deliver after the data, as a reordering broker could
        elif feature == protocol.FEATURE_MODEL:
            self.updater.on_announcement(payload)
        else:
            self.updater.on_model_data(payload)
            for held in self._held:
                self.updater.on_announcement(held)
            self._held.clear()

    def output_name(self) -> str:
        return self.slot.detect(IMAGE)[0]


def test_good_full_push_swaps_and_acks(push_models, keys, tmp_path):
    rig = Rig(push_models, keys, tmp_path)
    model = push_models.few_changed.read_bytes()
    manifest, signature = signed(rig.private, model, "v0002")
    result = rig.publisher.push(ENDPOINT, manifest, signature, model)
    assert rig.acks == [protocol.Ack(endpoint_id=ENDPOINT, model_version="v0002", ok=True)]
    assert rig.slot.version == "v0002" and rig.slot.serial == 2 and rig.output_name() == "v0002.onnx"
    assert rig.swaps_reported == ["v0002"]  # the retained status is refreshed after the swap
    assert (rig.models_dir / "v0002.onnx").read_bytes() == model
    assert (rig.models_dir / "v0002.manifest.sig").read_text() == signature
    assert result.encoding == "full" and result.bytes_sent > len(model)


@pytest.mark.parametrize("data_first", [False, True])
def test_good_delta_push_rebuilds_the_identical_file(push_models, keys, tmp_path, data_first):
    rig = Rig(push_models, keys, tmp_path, data_first=data_first)
    parent, model = push_models.base.read_bytes(), push_models.few_changed.read_bytes()
    manifest, signature = signed(rig.private, model, "v0002")
    result = rig.publisher.push(ENDPOINT, manifest, signature, model, encoding="delta", parent_bytes=parent)
    assert [(a.model_version, a.ok) for a in rig.acks] == [("v0002", True)]
    assert (rig.models_dir / "v0002.onnx").read_bytes() == model
    assert rig.slot.version == "v0002" and rig.output_name() == "v0002.onnx"
    print(f"\ndelta push sent {result.bytes_sent} bytes; a full push would send the {result.full_bytes}-byte file")
    assert result.encoding == "delta" and result.bytes_sent < 0.5 * result.full_bytes


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]


def _cut_model_data(feature: str, payload: bytes) -> bytes:
    return payload[:-5000] if feature == protocol.FEATURE_MODEL_DATA else payload


@pytest.mark.parametrize("case, version, reason", [
    ("corrupted", "v0002", "corrupted: sha256"),
    ("truncated", "v0002", "truncated"),
    ("unsigned", "v0002", "unsigned"),
    ("wrongly signed", "v0002", "not signed by the edge key"),
    ("delta for another running version", "v0002", "delta is against v0005, this endpoint runs v0001"),
    ("delta from other parent bytes", "v0002", "delta does not apply: delta was made for another parent"),
    ("signed but not a model", "v0002", "load failed"),
    ("cut in transit", "", "bad model_data: truncated"),
    ("garbage announcement", "", "bad announcement"),
    ("for another endpoint", "", "addressed to 'cam-2'"),
])
def test_bad_pushes_are_refused_and_the_old_model_keeps_running(push_models, keys, tmp_path, case, version,
                                                                 reason):
    rig = Rig(push_models, keys, tmp_path)
    base, model = push_models.base.read_bytes(), push_models.few_changed.read_bytes()
    manifest, signature = signed(rig.private, model, "v0002")
    sent, kwargs, endpoint_id = model, {}, ENDPOINT
    if case == "corrupted":
        sent = _flip(model, len(model) // 2)
    elif case == "truncated":
        sent = model[:-1000]
    elif case == "unsigned":
        signature = ""
    elif case == "wrongly signed":
        signature = sign(manifest, load_private_key(generate_keypair(tmp_path / "other")[0]))
    elif case == "delta for another running version":
        kwargs = dict(encoding="delta", parent_bytes=base, parent_version="v0005")
    elif case == "delta from other parent bytes":
        kwargs = dict(encoding="delta", parent_bytes=push_models.all_changed.read_bytes())
    elif case == "signed but not a model":
        sent = b"this is not an onnx file" * 100
        manifest, signature = signed(rig.private, sent, "v0002")
    elif case == "cut in transit":
        rig.tamper = _cut_model_data
    elif case == "for another endpoint":
        endpoint_id = "cam-2"
        rig.route = lambda topic, payload: Rig.route(rig, topic.replace("cam-2", ENDPOINT), payload)
        rig.publisher = ModelPublisher(rig.route)
    if case == "garbage announcement":
        rig.updater.on_announcement(b'{"v": 1, "kind": "model", "endpoint_id": "cam-1"}')
    else:
        rig.publisher.push(endpoint_id, manifest, signature, sent, **kwargs)
    assert len(rig.acks) == (2 if case == "for another endpoint" else 1)  # there each message is refused
    assert {(a.ok, a.model_version) for a in rig.acks} == {(False, version)}
    assert reason in rig.acks[-1].reason
    assert rig.slot.version == "v0001" and rig.output_name() == "v0001.onnx"
    assert sorted(p.name for p in rig.models_dir.iterdir()) == ["v0001.onnx"]
    assert rig.swaps_reported == []


def test_a_refused_push_does_not_block_the_next_good_one(push_models, keys, tmp_path):
    rig = Rig(push_models, keys, tmp_path)
    model = push_models.few_changed.read_bytes()
    manifest, signature = signed(rig.private, model, "v0002")
    rig.publisher.push(ENDPOINT, manifest, signature, model[:-10])
    rig.publisher.push(ENDPOINT, manifest, signature, model)
    assert [(a.model_version, a.ok) for a in rig.acks] == [("v0002", False), ("v0002", True)]
    assert rig.slot.version == "v0002"


def test_a_repeated_push_of_the_running_version_is_acked_without_a_swap(push_models, keys, tmp_path):
    rig = Rig(push_models, keys, tmp_path)
    model = push_models.base.read_bytes()
    manifest, signature = signed(rig.private, model, "v0001", parent="")
    rig.publisher.push(ENDPOINT, manifest, signature, model)
    assert [(a.model_version, a.ok, a.reason) for a in rig.acks] == [("v0001", True, "already running")]
    assert rig.slot.model_path == rig.models_dir / "v0001.onnx"


def test_old_model_files_are_pruned_keeping_the_running_the_previous_and_the_configured(push_models, keys,
                                                                                        tmp_path):
    rig = Rig(push_models, keys, tmp_path)
    models = [push_models.few_changed, push_models.all_changed, push_models.base]
    for i, path in enumerate(models):
        manifest, signature = signed(rig.private, path.read_bytes(), f"v{i + 2:04d}")
        rig.publisher.push(ENDPOINT, manifest, signature, path.read_bytes())
    assert all(a.ok for a in rig.acks) and rig.slot.version == "v0004"
    onnx_files = sorted(p.name for p in rig.models_dir.glob("*.onnx"))
    assert onnx_files == ["v0001.onnx", "v0003.onnx", "v0004.onnx"]  # v0001 is the configured fallback
    assert not (rig.models_dir / "v0002.manifest.json").exists()
    assert np.isfinite(rig.slot.detect(IMAGE)[1]).all()


def _files(directory) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in directory.iterdir()}


def test_a_replayed_older_push_after_a_newer_install_is_refused(push_models, keys, tmp_path):
    rig = Rig(push_models, keys, tmp_path)
    captured: list[tuple[str, bytes]] = []

    def record(topic: str, payload: bytes) -> None:
        captured.append((topic, payload))
        rig.route(topic, payload)

    rig.publisher = ModelPublisher(record)
    for version, path in (("v0002", push_models.few_changed), ("v0003", push_models.all_changed)):
        manifest, signature = signed(rig.private, path.read_bytes(), version)
        rig.publisher.push(ENDPOINT, manifest, signature, path.read_bytes())
    before = _files(rig.models_dir)
    for topic, payload in captured[:2]:  # the attacker replays the captured, validly signed v0002 push
        rig.route(topic, payload)
    assert [(a.model_version, a.ok) for a in rig.acks] == [("v0002", True), ("v0003", True), ("v0002", False)]
    assert rig.acks[-1].reason == "not newer: serial 2 (v0002) is not above the running serial 3 (v0003)"
    assert rig.slot.version == "v0003" and rig.output_name() == "v0003.onnx"
    assert _files(rig.models_dir) == before and rig.swaps_reported == ["v0002", "v0003"]


def test_an_unsigned_starting_model_named_by_the_registry_refuses_older_pushes(push_models, keys, tmp_path):
    """A starting model without a signed sidecar runs with serial 0: one named v0003 (the registry's, as `round
    --init` deploys them) took any captured signed push, v0002 too. Its name now sets the floor."""
    shutil.copy(push_models.base, tmp_path / "v0003.onnx")
    rig = Rig(push_models, keys, tmp_path)
    rig.slot = ModelSlot(OrtDetector, tmp_path / "v0003.onnx", "v0003", 0)
    rig.updater = ModelUpdater(rig.slot, rig.models_dir, keys[1], rig.acks.append, ENDPOINT,
                               fallback_path=tmp_path / "v0003.onnx")
    for version, path in (("v0002", push_models.few_changed), ("v0004", push_models.all_changed)):
        manifest, signature = signed(rig.private, path.read_bytes(), version)
        rig.publisher.push(ENDPOINT, manifest, signature, path.read_bytes())
    assert [(a.model_version, a.ok, a.reason) for a in rig.acks] == [
        ("v0002", False, "not newer: serial 2 (v0002) is not above the running serial 3 (v0003)"),
        ("v0004", True, "")]
    assert rig.slot.version == "v0004" and rig.slot.serial == 4


def test_a_stale_push_is_refused_before_its_delta_is_rebuilt(push_models, keys, tmp_path, monkeypatch):
    rig = Rig(push_models, keys, tmp_path, start=("v0001", 5))
    monkeypatch.setattr("endpoint.model.updater.apply_delta", lambda *a: pytest.fail("a stale delta was inflated"))
    model = push_models.few_changed.read_bytes()
    manifest, signature = signed(rig.private, model, "v0002")
    rig.publisher.push(ENDPOINT, manifest, signature, model, encoding="delta",
                       parent_bytes=push_models.base.read_bytes())
    assert [(a.ok, a.reason) for a in rig.acks] == [
        (False, "not newer: serial 2 (v0002) is not above the running serial 5 (v0001)")]
    assert sorted(p.name for p in rig.models_dir.iterdir()) == ["v0001.onnx"]


@pytest.mark.parametrize("target, ok", [(ENDPOINT, True), ("lab-fleet", True), ("cam-2", False), ("default", False)])
def test_only_pushes_signed_for_this_endpoint_or_its_fleet_are_taken(push_models, keys, tmp_path, target, ok):
    rig = Rig(push_models, keys, tmp_path, fleet="lab-fleet")
    model = push_models.few_changed.read_bytes()
    manifest, signature = signed(rig.private, model, "v0002", target=target)
    rig.publisher.push(ENDPOINT, manifest, signature, model)  # re-addressed: the envelope says cam-1
    assert [(a.model_version, a.ok) for a in rig.acks] == [("v0002", ok)]
    if ok:
        assert rig.slot.version == "v0002"
    else:
        assert rig.acks[0].reason == f"wrong target: signed for '{target}', this is 'cam-1' in fleet 'lab-fleet'"
        assert rig.slot.version == "v0001" and sorted(p.name for p in rig.models_dir.iterdir()) == ["v0001.onnx"]


def test_a_deliberate_rollback_is_a_newer_serial_with_old_weights(push_models, keys, tmp_path):
    rig = Rig(push_models, keys, tmp_path)
    for version, path in (("v0002", push_models.few_changed), ("v0003", push_models.base)):
        manifest, signature = signed(rig.private, path.read_bytes(), version)
        rig.publisher.push(ENDPOINT, manifest, signature, path.read_bytes())
    assert all(a.ok for a in rig.acks) and (rig.slot.version, rig.slot.serial) == ("v0003", 3)
    assert (rig.models_dir / "v0003.onnx").read_bytes() == push_models.base.read_bytes()


def _store(models_dir, private, path, version: str) -> None:
    model = path.read_bytes()
    manifest, signature = signed(private, model, version)
    (models_dir / f"{version}.onnx").write_bytes(model)
    (models_dir / f"{version}.manifest.json").write_bytes(canonical_bytes(manifest))
    (models_dir / f"{version}.manifest.sig").write_text(signature)


def test_pruning_includes_files_from_before_a_restart(push_models, keys, tmp_path):
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    for version, path in (("v0002", push_models.few_changed), ("v0003", push_models.all_changed)):
        _store(models_dir, keys[0], path, version)  # written by the previous run of the endpoint
    (models_dir / ".tmp-k1ll3d").write_bytes(b"half a model")  # kill -9 mid-write
    (models_dir / "v0005.onnx").write_bytes(b"no sidecar: killed before it was written")
    (models_dir / "README.txt").write_text("not a model file: left alone")
    rig = Rig(push_models, keys, tmp_path, start=("v0003", 3))  # booted the stored v0003
    manifest, signature = signed(rig.private, push_models.base.read_bytes(), "v0006")
    rig.publisher.push(ENDPOINT, manifest, signature, push_models.base.read_bytes())
    assert rig.acks[-1].ok and rig.slot.version == "v0006"
    assert sorted(p.name for p in models_dir.iterdir()) == [
        "README.txt", "v0001.onnx", "v0003.manifest.json", "v0003.manifest.sig", "v0003.onnx",
        "v0006.manifest.json", "v0006.manifest.sig", "v0006.onnx"]
