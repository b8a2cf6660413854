"""Head + tail against the unsplit model, compression against mAP, and the cut bookkeeping (real ONNX models)."""

import numpy as np
import pytest

from edge.evaluate import EVAL_CONF, EVAL_IOU
from edge.map_metric import MeanAveragePrecision
from edge.split.split_set import pair_of
from edge.split.tail_runner import SplitTailRunner
from edge.yolo_dataset import scenario_items
from endpoint.model.detector import OnnxDetector
from endpoint.model.split_halves import SplitHeadRunner, SplitModelError
from endpoint.sources.scenario import SyntheticScenario
from endpoint.wire.feature_codec import CodecSpec, decode_tensors, encode_tensors
from tests.edge.split.conftest import CUTS

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def val_items():
    return scenario_items(SyntheticScenario(), "day", 100_000, 32, "val-")


def _runners(folder, manifest, key):
    pair = pair_of(manifest, folder, key)
    return SplitHeadRunner(pair.head_path, 1), SplitTailRunner(pair.tail_path, 1)


def test_crossing_tensors_follow_the_skip_connections(split_set):
    folder, manifest = split_set
    crossing = {p.key: p.crossing for p in manifest.pairs}
    assert crossing["after2"] == [2] and crossing["after4"] == [4]
    assert crossing["after6"] == [4, 6]  # layer 4 is read again by a Concat after the cut
    assert len(manifest.layer_gflops) == manifest.layers and all(g >= 0 for g in manifest.layer_gflops)


@pytest.mark.parametrize("key", [f"after{k}" for k in CUTS])
def test_head_plus_tail_detect_exactly_what_the_whole_model_detects(split_set, val_items, key):
    folder, manifest = split_set
    whole = OnnxDetector(folder / manifest.full_onnx, conf_threshold=0.25)
    head, tail = _runners(folder, manifest, key)
    boxes = 0
    for item in val_items[:8]:
        expected = whole.detect(item.image)
        feats, geo = head.run(item.image)
        got = tail.detect(feats, geo.source_hw, 0.25)
        assert len(got) == len(expected)
        np.testing.assert_allclose(got.xyxy, expected.xyxy, atol=1e-3)
        np.testing.assert_allclose(got.confidence, expected.confidence, atol=1e-5)
        np.testing.assert_array_equal(got.class_id, expected.class_id)
        boxes += len(expected)
    assert boxes > 0  # the trained model finds something, so the comparison means something


def _map_and_bytes(head, tail, items, spec):
    metric, sizes = MeanAveragePrecision(), []
    for item in items:
        feats, geo = head.run(item.image)
        if spec is not None:
            blob = encode_tensors(feats, spec)
            sizes.append(len(blob))
            feats = decode_tensors(blob)
        else:
            sizes.append(sum(f.nbytes for f in feats))
        dets = tail.detect(feats, geo.source_hw, EVAL_CONF, EVAL_IOU)
        h, w = item.image.shape[:2]
        metric.update(dets.xyxy, dets.confidence, dets.class_id, np.asarray(item.boxes) * [w, h, w, h], item.classes)
    return metric.compute(), float(np.mean(sizes))


@pytest.mark.parametrize("key", ["after4", "after6"])
def test_8_bit_features_cost_little_map_and_far_fewer_bytes(split_set, val_items, key):
    folder, manifest = split_set
    head, tail = _runners(folder, manifest, key)
    exact, raw_bytes = _map_and_bytes(head, tail, val_items, None)
    q8, q8_bytes = _map_and_bytes(head, tail, val_items, CodecSpec.parse("q8c-zlib"))
    assert exact.map50 > 0.2  # a model that detects, or the bound below says nothing
    assert abs(q8.map50 - exact.map50) <= 0.05
    assert abs(q8.map50_95 - exact.map50_95) <= 0.05
    assert q8_bytes < raw_bytes / 4


def test_learned_bottleneck_shrinks_bytes_with_bounded_map_loss(split_set, val_items):
    folder, manifest = split_set
    plain_head, plain_tail = _runners(folder, manifest, "after4")
    bn_head, bn_tail = _runners(folder, manifest, "after4-bn4")
    assert manifest.pair("after4-bn4").crossing_shapes[0][1] * 4 == manifest.pair("after4").crossing_shapes[0][1]
    spec = CodecSpec.parse("q8c-zlib")
    plain, plain_bytes = _map_and_bytes(plain_head, plain_tail, val_items, spec)
    bottleneck, bn_bytes = _map_and_bytes(bn_head, bn_tail, val_items, spec)
    assert bn_bytes < plain_bytes * 0.6
    assert bottleneck.map50 >= plain.map50 - 0.1


def test_profile_shows_data_amplification_of_early_cuts(split_set, val_items):
    from edge.split.profile import profile_pair

    folder, manifest = split_set
    images = [item.image for item in val_items[:2]]
    early = profile_pair(pair_of(manifest, folder, "after2"), manifest.layer_gflops, images, runs=2)
    late = profile_pair(pair_of(manifest, folder, "after6"), manifest.layer_gflops, images, runs=2)
    assert early.amplification > 1.0  # 32 float32 channels at 1/4 resolution outweigh the uint8 image
    assert early.head_gflops < late.head_gflops and early.tail_gflops > late.tail_gflops
    assert early.head_ms > 0 and early.tail_ms > 0


def test_a_head_is_not_a_tail(split_set):
    folder, manifest = split_set
    pair = pair_of(manifest, folder, "after4")
    with pytest.raises(SplitModelError, match="not a tail"):
        SplitTailRunner(pair.head_path)
    with pytest.raises(SplitModelError, match="not a split model half"):
        SplitHeadRunner(folder / manifest.full_onnx)
