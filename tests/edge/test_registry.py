"""The model registry on a local directory and on a real S3 server (SeaweedFS)."""

from __future__ import annotations

import pytest

from edge.registry import ModelRegistry
from edge.signing import generate_keypair, load_private_key
from edge.store.base import StoreError
from edge.store.local import LocalStore
from endpoint.model.verify import load_public_key, verify_model
from endpoint.wire.manifest import canonical_bytes

FIELDS = dict(format="onnx-int8", input_size=(96, 128), class_names=["person", "car"])


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.integration)])
def store(request, tmp_path):
    return LocalStore(tmp_path / "store") if request.param == "local" else request.getfixturevalue("s3_store")


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    private_path, public_path = generate_keypair(tmp_path_factory.mktemp("keys"))
    return load_private_key(private_path), load_public_key(public_path)


def model_file(tmp_path, content: bytes):
    path = tmp_path / f"m{len(content)}.onnx"
    path.write_bytes(content)
    return path


def test_publish_get_latest_versions(store, keys, tmp_path):
    private, public = keys
    registry = ModelRegistry(store, private)
    assert registry.versions("student") == [] and registry.latest("student") is None
    first = registry.publish("student", model_file(tmp_path, b"first" * 100), metrics={"map50": 0.2}, **FIELDS)
    second = registry.publish("student", model_file(tmp_path, b"second" * 100), created=5.0, **FIELDS)
    assert (first.version, first.parent_version, first.serial, first.target) == ("v0001", "", 1, "default")
    assert (second.version, second.parent_version, second.created, second.serial) == ("v0002", "v0001", 5.0, 2)
    assert registry.versions("student") == ["v0001", "v0002"]
    assert registry.latest("student") == second
    manifest, model, signature = registry.get("student", "v0001")
    assert manifest == first and model == b"first" * 100
    assert verify_model(canonical_bytes(manifest), signature, model, public) == first
    assert store.exists("models/student/v0002/model.onnx")
    other = registry.publish("other", model_file(tmp_path, b"x" * 10), parent_version="", **FIELDS)
    assert other.version == "v0001" and registry.versions("student") == ["v0001", "v0002"]


def test_an_incomplete_version_is_skipped_then_replaced(store, keys, tmp_path):
    registry = ModelRegistry(store, keys[0])
    registry.publish("student", model_file(tmp_path, b"a" * 50), **FIELDS)
    store.put("models/student/v0002/model.onnx", b"half-written")  # a crash before the signature
    assert registry.versions("student") == ["v0001"]
    again = registry.publish("student", model_file(tmp_path, b"b" * 50), **FIELDS)
    assert again.version == "v0002" and registry.get("student", "v0002").model_bytes == b"b" * 50


def test_a_corrupted_stored_model_is_refused(store, keys, tmp_path):
    registry = ModelRegistry(store, keys[0])
    registry.publish("student", model_file(tmp_path, b"a" * 50), **FIELDS)
    store.put("models/student/v0001/model.onnx", b"a" * 49 + b"b")
    with pytest.raises(StoreError, match="does not match"):
        registry.get("student", "v0001")


def test_versions_sort_by_number_past_9999(tmp_path, keys):
    store = LocalStore(tmp_path)
    for version in ("v9999", "v10000", "v0002"):
        store.put(f"models/s/{version}/manifest.sig", b"00")
    store.put("models/s/latest/manifest.sig", b"00")  # not a version name: ignored
    assert ModelRegistry(store, keys[0]).versions("s") == ["v0002", "v9999", "v10000"]


@pytest.mark.parametrize("name", ["", "a/b"])
def test_bad_names_are_refused(tmp_path, keys, name):
    with pytest.raises(ValueError):
        ModelRegistry(LocalStore(tmp_path), keys[0]).publish(name, model_file(tmp_path, b"x"), **FIELDS)


def test_serial_follows_the_version_counter_and_the_target_is_signed(tmp_path, keys):
    private, public = keys
    registry = ModelRegistry(LocalStore(tmp_path / "store"), private)
    path = model_file(tmp_path, b"weights" * 10)
    manifests = [registry.publish("student", path, **FIELDS) for _ in range(2)]
    # A deliberate rollback: the old weights again, under a newer version and serial.
    rollback = registry.publish("student", path, fleet="cam-7", **FIELDS)
    assert [m.serial for m in (*manifests, rollback)] == [1, 2, 3]
    assert rollback.target == "cam-7" and rollback.sha256 == manifests[0].sha256
    manifest, model, signature = registry.get("student", "v0003")
    assert verify_model(canonical_bytes(manifest), signature, model, public).target == "cam-7"
    with pytest.raises(ValueError):
        registry.publish("student", path, fleet="two words", **FIELDS)


def test_prune_keeps_what_is_in_use_the_first_and_the_newest(store, keys, tmp_path):
    """Versions only grew: one model a round, each published whether or not an endpoint ever got it."""
    registry = ModelRegistry(store, keys[0])
    for n in range(1, 13):
        registry.publish("student", model_file(tmp_path, b"m" * n), **FIELDS)
    store.put("models/student/v0013/model.onnx", b"a publish in flight: no signature yet")
    store.put("models/student/v0003x/model.onnx", b"not a version name: not the registry's to delete")
    pruned = registry.prune("student", keep={"v0005"}, keep_newest=3)
    assert pruned == ["v0002", "v0003", "v0004", "v0006", "v0007", "v0008", "v0009"]
    assert registry.versions("student") == ["v0001", "v0005", "v0010", "v0011", "v0012"]
    left = set(store.list("models/student/"))
    assert not any(key.split("/")[2] in pruned for key in left)
    assert {"models/student/v0013/model.onnx", "models/student/v0003x/model.onnx"} <= left
    assert registry.get("student", "v0005").model_bytes == b"m" * 5
    assert registry.publish("student", model_file(tmp_path, b"next"), **FIELDS).version == "v0013"  # numbers grow


class DeleteFailsAfter:
    """A store whose deletes fail after ``n`` of them: a prune cut short by an outage or a kill."""

    def __init__(self, inner, n: int):
        self.inner, self.left = inner, n

    def delete(self, key):
        if self.left == 0:
            raise StoreError("store went away")
        self.left -= 1
        self.inner.delete(key)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_a_prune_cut_short_leaves_no_version_half_there_and_the_next_one_finishes(tmp_path, keys):
    store = LocalStore(tmp_path / "store")
    registry = ModelRegistry(store, keys[0])
    for n in range(1, 5):
        registry.publish("student", model_file(tmp_path, b"m" * n), **FIELDS)
    with pytest.raises(StoreError):
        ModelRegistry(DeleteFailsAfter(store, 1), keys[0]).prune("student", keep=set(), keep_newest=1)
    assert registry.versions("student") == ["v0001", "v0003", "v0004"]  # v0002 lost its signature first: gone
    assert registry.prune("student", keep=set(), keep_newest=1) == ["v0002", "v0003"]
    assert sorted({key.split("/")[2] for key in store.list("models/student/")}) == ["v0001", "v0004"]
