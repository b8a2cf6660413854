"""The push a round offers its scheduler is planned at what that kind of push last cost."""

from __future__ import annotations

from edge.learner.push_options import push_options, sparse_option_name
from edge.learning_config import LearningConfig
from endpoint.wire.manifest import Manifest

MODEL_BYTES = 679_000


def _manifest() -> Manifest:
    return Manifest(name="student", version="v0002", target="fleet", serial=2, format="onnx-int8", sha256="0" * 64,
                    size_bytes=MODEL_BYTES, input_size=(128, 128), created=0.0)


def test_a_dense_student_is_planned_at_its_last_push_once_one_was_sent():
    dense = LearningConfig()
    assert [o.name for o in push_options(_manifest(), dense, {})] == ["skip", "full"]
    assert push_options(_manifest(), dense, {})[1].bytes == MODEL_BYTES  # nothing sent yet: the whole model
    assert push_options(_manifest(), dense, {"full": 212_000})[1].bytes == 212_000


def test_a_sparse_round_offers_its_fraction_as_a_delta_far_smaller_than_the_model():
    sparse = LearningConfig(sparse_fraction=0.05)
    skip, dense, push = push_options(_manifest(), sparse, {})
    assert (dense.name, push.name, push.kind) == ("full", "sparse-5", "delta") and push.bytes < 0.2 * MODEL_BYTES
    assert [o.bytes for o in push_options(_manifest(), sparse, {"sparse-5": 44_774, "full": 212_000})] == [
        0, 212_000, 44_774]


def test_an_fp32_student_is_never_offered_as_sparse():
    fp32 = LearningConfig(sparse_fraction=0.05, student_precision="fp32")
    assert sparse_option_name(fp32) is None and [o.name for o in push_options(_manifest(), fp32, {})] == ["skip", "full"]
