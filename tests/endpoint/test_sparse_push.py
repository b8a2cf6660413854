"""A sparse INT8 update pushed as a delta through the endpoint's normal update path installs the signed file."""

from __future__ import annotations

import hashlib

from endpoint.wire import protocol
from tests.endpoint.test_updater import ENDPOINT, Rig, keys, signed  # noqa: F401 (keys is a fixture)
from pipelines.bench_delta import sparse_int8_child


def test_a_sparse_int8_delta_push_installs_a_byte_identical_model(push_models, keys, tmp_path):  # noqa: F811
    rig = Rig(push_models, keys, tmp_path)
    child = tmp_path / "child.onnx"
    changed = sparse_int8_child(push_models.base, child, 0.05, tensor_count=None)
    parent, model = push_models.base.read_bytes(), child.read_bytes()
    manifest, signature = signed(rig.private, model, "v0002")
    result = rig.publisher.push(ENDPOINT, manifest, signature, model, encoding="delta", parent_bytes=parent)
    assert rig.acks == [protocol.Ack(endpoint_id=ENDPOINT, model_version="v0002", ok=True)]
    installed = (rig.models_dir / "v0002.onnx").read_bytes()
    assert hashlib.sha256(installed).hexdigest() == manifest.sha256
    assert rig.slot.version == "v0002" and rig.output_name() == "v0002.onnx"  # it loads and runs
    print(f"\n5% of every INT8 weight ({changed} values) changed: the push sent {result.bytes_sent} bytes for the "
          f"{result.full_bytes}-byte file ({result.bytes_sent / result.full_bytes:.1%})")
    # About a byte and a half per change; the whole-tensor delta sent every changed tensor, ~45% of the file.
    assert result.encoding == "delta" and result.bytes_sent < 2 * changed + 16 * 1024
