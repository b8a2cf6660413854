"""Deltas between real INT8 ONNX students: copies, sparse patches for sparse changes, inserts where nothing matches."""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path

import onnx
import pytest

from edge.delta_encode import encode_delta, encode_delta_with_stats, tensor_spans
from endpoint.wire.delta import DeltaError, apply_delta
from pipelines.bench_delta import int8_weights, sparse_int8_child


@pytest.fixture(scope="module")
def int8_student(tiny_yolo_onnx, tmp_path_factory) -> Path:
    """The tests' trained tiny YOLO quantized as the edge quantizes students (QDQ, per-channel INT8 weights)."""
    from edge.quantize import quantize_int8
    from endpoint.sources.scenario import SyntheticScenario

    calibration = [SyntheticScenario().frame("day", 300_000 + i).image for i in range(4)]
    return quantize_int8(tiny_yolo_onnx, tmp_path_factory.mktemp("int8") / "student.int8.onnx", calibration, 128)


def _changed_tensor_bytes(a: Path, b: Path) -> int:
    before = {t.name: t.raw_data for t in onnx.load(str(a)).graph.initializer}
    return sum(len(t.raw_data) for t in onnx.load(str(b)).graph.initializer if before.get(t.name) != t.raw_data)


def _rebuilds(parent: bytes, delta: bytes, new: bytes) -> bool:
    return hashlib.sha256(apply_delta(parent, delta, len(new))).digest() == hashlib.sha256(new).digest()


@pytest.mark.parametrize("fraction", [0.01, 0.05, 0.20])
def test_a_sparse_int8_change_is_sent_as_its_changes_and_rebuilds_the_file(int8_student, tmp_path, fraction):
    child = tmp_path / "child.onnx"
    changed = sparse_int8_child(int8_student, child, fraction)
    parent, new = int8_student.read_bytes(), child.read_bytes()
    delta, stats = encode_delta_with_stats(parent, new)
    assert _rebuilds(parent, delta, new)
    tensor = int8_weights(onnx.load(str(int8_student)))[0].raw_data
    whole_tensor_bytes = len(zlib.compress(tensor, 9))  # what sending the changed tensor whole costs at least
    print(f"\n{fraction:.0%} of a {len(tensor)}-byte INT8 tensor ({changed} values) changed: delta {len(delta)} "
          f"bytes, the tensor alone zlib'd {whole_tensor_bytes} bytes, the file {len(new)} bytes; {stats}")
    assert len(delta) < 0.5 * whole_tensor_bytes
    assert stats.patch_ops == 1 and stats.patched_bytes == len(tensor) and stats.inserted_bytes == 0
    assert len(delta) < 1024 + 3 * changed  # positions and values, about a byte and a half per change


def test_the_changed_values_of_every_weight_tensor_cost_little_more_than_the_changes(int8_student, tmp_path):
    child = tmp_path / "child.onnx"
    changed = sparse_int8_child(int8_student, child, 0.05, tensor_count=None)
    parent, new = int8_student.read_bytes(), child.read_bytes()
    delta, stats = encode_delta_with_stats(parent, new)
    assert _rebuilds(parent, delta, new)
    print(f"\n5% of every INT8 weight ({changed} values) changed: delta {len(delta)} bytes of {len(new)}; {stats}")
    assert len(delta) < 2 * changed + 4096
    assert stats.patch_ops == len(int8_weights(onnx.load(str(int8_student))))


def test_a_tensor_whose_length_changed_goes_out_whole(int8_student, tmp_path):
    model = onnx.load(str(int8_student))
    tensor = int8_weights(model)[0]
    tensor.raw_data = tensor.raw_data + bytes(64)  # same name, another length: no counterpart to patch against
    parent = int8_student.read_bytes()
    new = model.SerializeToString()
    delta, stats = encode_delta_with_stats(parent, new)
    assert _rebuilds(parent, delta, new)
    # Only the tensor goes whole; the length fields around it differ in a byte or two and are patched.
    assert len(tensor.raw_data) <= stats.inserted_bytes < len(tensor.raw_data) + 64
    assert stats.patch_data_bytes < 64


def test_delta_of_a_few_changed_tensors_is_small_and_rebuilds_the_file(push_models):
    parent, new = push_models.base.read_bytes(), push_models.few_changed.read_bytes()
    delta, stats = encode_delta_with_stats(parent, new)
    assert _rebuilds(parent, delta, new)
    print(f"\ndelta push: {len(delta)} bytes vs full {len(new)} bytes ({len(delta) / len(new):.1%}); {stats}")
    # Every byte of every value flipped: the patches cost about a bit per changed byte, nothing else is sent.
    assert len(delta) < _changed_tensor_bytes(push_models.base, push_models.few_changed) / 4 + 4096


def test_delta_when_every_tensor_changed_still_rebuilds_the_file(push_models):
    parent, new = push_models.base.read_bytes(), push_models.all_changed.read_bytes()
    delta, stats = encode_delta_with_stats(parent, new)
    assert apply_delta(parent, delta, len(new)) == new
    print(f"\nall tensors changed: delta {len(delta)} bytes vs full {len(new)} bytes; {stats}")
    assert stats.patched_bytes + stats.inserted_bytes >= _changed_tensor_bytes(push_models.base,
                                                                               push_models.all_changed)


def test_tensor_spans_point_at_the_raw_bytes(push_models):
    data = push_models.base.read_bytes()
    spans = tensor_spans(data)
    assert len(spans) > 50
    assert all(data[span.offset : span.offset + len(span.raw)] == span.raw for span in spans)


def test_delta_refuses_another_parent(push_models):
    delta = encode_delta(push_models.base.read_bytes(), push_models.few_changed.read_bytes())
    with pytest.raises(DeltaError, match="another parent"):
        apply_delta(push_models.all_changed.read_bytes(), delta, push_models.few_changed.stat().st_size)


def test_delta_against_an_identical_parent_is_one_copy(push_models):
    data = push_models.base.read_bytes()
    delta, stats = encode_delta_with_stats(data, data)
    assert apply_delta(data, delta, len(data)) == data
    assert stats.copy_ops == 1 and stats.copied_bytes == len(data)
    assert len(delta) < 200
