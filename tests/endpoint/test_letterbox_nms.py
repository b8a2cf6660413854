"""Letterbox geometry and NMS against hand-worked tables and against ultralytics' own code."""

from __future__ import annotations

import numpy as np
import pytest

from endpoint.model.letterbox import (ModelInputBuffer, boxes_to_input, boxes_to_source, letterbox, letterbox_geometry,
                                      to_model_input)
from endpoint.model.nms import end2end_filter, nms_indices, non_max_suppression

# source (h, w), input (h, w), resized (w, h), pad_left, pad_top — worked out by hand from LetterBox's formulas
GEOMETRY_TABLE = [
    ((240, 320), (128, 128), (128, 96), 0, 16),
    ((320, 240), (128, 128), (96, 128), 16, 0),
    ((100, 100), (128, 128), (128, 128), 0, 0),  # scale up
    ((480, 640), (640, 640), (640, 480), 0, 80),
    ((240, 100), (128, 128), (53, 128), 37, 0),  # odd padding: 37 left, 38 right
    ((1, 3000), (128, 128), (128, 1), 0, 63),  # thin image keeps one pixel row
    ((333, 500), (160, 128), (128, 85), 0, 37),  # non-square input
]


@pytest.mark.parametrize("source_hw, input_hw, resized_wh, pad_left, pad_top", GEOMETRY_TABLE)
def test_geometry_table(source_hw, input_hw, resized_wh, pad_left, pad_top):
    geo = letterbox_geometry(source_hw, input_hw)
    assert (geo.resized_wh, geo.pad_left, geo.pad_top) == (resized_wh, pad_left, pad_top)


@pytest.mark.parametrize("source_hw, input_hw", [row[:2] for row in GEOMETRY_TABLE])
def test_letterbox_pixels_match_ultralytics(source_hw, input_hw):
    from ultralytics.data.augment import LetterBox

    rng = np.random.default_rng(sum(source_hw))
    image = rng.integers(0, 256, size=(*source_hw, 3), dtype=np.uint8)
    ours, geo = letterbox(image, input_hw)
    theirs = LetterBox(input_hw, auto=False, stride=32)(image=image)
    assert ours.shape == (*input_hw, 3)
    np.testing.assert_array_equal(ours, theirs)
    if geo.pad_top:
        assert (ours[0] == 114).all() and (ours[-1] == 114).all()


@pytest.mark.parametrize("source_hw, input_hw", [row[:2] for row in GEOMETRY_TABLE])
def test_boxes_to_source_matches_ultralytics_scale_boxes(source_hw, input_hw):
    from ultralytics.utils.ops import scale_boxes

    rng = np.random.default_rng(7)
    xy = rng.uniform(-5, max(input_hw) + 5, size=(20, 2)).astype(np.float32)
    wh = rng.uniform(1, 60, size=(20, 2)).astype(np.float32)
    boxes_in = np.concatenate([xy, xy + wh], axis=1)
    ours = boxes_to_source(boxes_in, letterbox_geometry(source_hw, input_hw))
    theirs = scale_boxes(input_hw, boxes_in.copy(), source_hw)
    np.testing.assert_allclose(ours, theirs, atol=1e-4)
    assert ours.min() >= 0 and ours[:, [0, 2]].max() <= source_hw[1] and ours[:, [1, 3]].max() <= source_hw[0]


def test_boxes_round_trip():
    geo = letterbox_geometry((240, 100), 128)
    boxes = np.array([[10, 20, 60, 200], [0, 0, 100, 240]], np.float32)
    np.testing.assert_allclose(boxes_to_source(boxes_to_input(boxes, geo), geo), boxes, atol=1e-3)


def test_model_input_is_rgb_0_to_1_nchw():
    image = np.zeros((240, 320, 3), np.uint8)
    image[..., 0] = 255  # pure blue in BGR
    tensor, _ = to_model_input(image, 128)
    assert tensor.shape == (1, 3, 128, 128) and tensor.dtype == np.float32
    assert tensor[0, 2, 64, 64] == 1.0 and tensor[0, 0, 64, 64] == 0.0  # blue lands in channel 2 (RGB)
    assert tensor[0, 0, 0, 0] == pytest.approx(114 / 255)  # padding row


def test_model_input_buffer_matches_a_fresh_letterbox_as_shapes_change():
    """One reused tensor: after a portrait frame no landscape pixel may stay behind in the new padding."""
    rng = np.random.default_rng(3)
    buffer = ModelInputBuffer(128)
    for shape in [(240, 320), (320, 240), (240, 320), (100, 100), (1, 300), (240, 320)]:
        image = rng.integers(0, 256, size=(*shape, 3), dtype=np.uint8)
        tensor, geo = buffer.write(image)
        padded, expected_geo = letterbox(image, 128)
        expected = padded[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32) / np.float32(255)
        assert geo == expected_geo
        np.testing.assert_array_equal(tensor, expected)
    assert buffer.write(image)[0] is tensor  # no allocation per frame


def test_model_input_buffer_takes_strided_views():
    """A transposed or flipped view of a frame (OpenCV rejects such strides) is letterboxed as its copy would be."""
    image = np.random.default_rng(4).integers(0, 256, size=(240, 320, 3), dtype=np.uint8)
    for view in (image.transpose(1, 0, 2), image[:, ::-1]):
        expected = ModelInputBuffer(128).write(np.ascontiguousarray(view))[0].copy()
        np.testing.assert_array_equal(ModelInputBuffer(128).write(view)[0], expected)


def test_model_input_buffer_bounds_its_size():
    with pytest.raises(ValueError, match="model input must be"):
        ModelInputBuffer((128, 100_000))


@pytest.mark.parametrize("bad", [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 4), np.uint8),
                                 np.zeros((10, 10, 3), np.float32)])
def test_model_input_rejects_non_bgr_images(bad):
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        to_model_input(bad, 128)


def _raw(rows: list[tuple[float, float, float, float, int, float]], nc: int = 3) -> np.ndarray:
    """A (4 + nc, N) head output from rows of (cx, cy, w, h, class, score)."""
    out = np.zeros((4 + nc, len(rows)), np.float32)
    for i, (cx, cy, w, h, cls, score) in enumerate(rows):
        out[:4, i] = (cx, cy, w, h)
        out[4 + cls, i] = score
    return out


# rows, conf, iou, agnostic, max_det, expected kept scores in order
NMS_TABLE = [
    ([(50, 50, 20, 20, 0, 0.9), (51, 50, 20, 20, 0, 0.8)], 0.25, 0.7, False, 300, [0.9]),  # IoU 0.90: suppressed
    ([(50, 50, 20, 20, 0, 0.9), (51, 50, 20, 20, 1, 0.8)], 0.25, 0.7, False, 300, [0.9, 0.8]),  # other class
    ([(50, 50, 20, 20, 0, 0.9), (51, 50, 20, 20, 1, 0.8)], 0.25, 0.7, True, 300, [0.9]),  # agnostic
    ([(50, 50, 20, 20, 0, 0.9), (55, 50, 20, 20, 0, 0.8)], 0.25, 0.7, False, 300, [0.9, 0.8]),  # IoU 0.60: kept
    ([(50, 50, 20, 20, 0, 0.9), (55, 50, 20, 20, 0, 0.8)], 0.25, 0.5, False, 300, [0.9]),  # lower iou threshold
    ([(50, 50, 20, 20, 0, 0.25), (90, 90, 20, 20, 0, 0.3)], 0.25, 0.7, False, 300, [0.3]),  # conf is strict '>'
    ([(10 + 30 * i, 50, 20, 20, 0, 0.5 + i / 100) for i in range(5)], 0.25, 0.7, False, 2, [0.54, 0.53]),  # max_det
    ([(50, 50, 20, 20, 0, 0.1)], 0.25, 0.7, False, 300, []),  # nothing passes
    ([(50, 50, 20, 20, 0, 0.25)], 0.25, 0.7, False, 300, []),  # the best score equals the threshold: nothing passes
    ([(50, 50, 20, 20, 0, np.nan), (90, 90, 20, 20, 1, 0.6)], 0.25, 0.7, False, 300, [0.6]),  # NaN hides no box
]


@pytest.mark.parametrize("rows, conf, iou, agnostic, max_det, expected", NMS_TABLE)
def test_nms_table(rows, conf, iou, agnostic, max_det, expected):
    _, scores, _ = non_max_suppression(_raw(rows), conf, iou, max_det=max_det, agnostic=agnostic)
    np.testing.assert_allclose(scores, expected, atol=1e-6)


def test_nms_converts_xywh_and_reports_best_class():
    xyxy, scores, cls = non_max_suppression(_raw([(50, 40, 20, 10, 2, 0.9)]), 0.25, 0.7)
    np.testing.assert_allclose(xyxy, [[40, 35, 60, 45]])
    assert cls.tolist() == [2] and cls.dtype == np.int64


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("iou", [0.45, 0.7])
def test_nms_matches_ultralytics_on_random_heads(seed, iou):
    import torch
    from ultralytics.utils.nms import non_max_suppression as ultralytics_nms

    rng = np.random.default_rng(seed)
    n, nc = 400, 3
    raw = np.zeros((4 + nc, n), np.float32)
    raw[:2] = rng.uniform(0, 128, size=(2, n))  # centres clustered in a small image: many overlaps
    raw[2:4] = rng.uniform(4, 40, size=(2, n))
    raw[4:] = rng.uniform(0, 1, size=(nc, n)) ** 3
    xyxy, scores, cls = non_max_suppression(raw, 0.2, iou, max_det=50)
    (theirs,) = ultralytics_nms(torch.from_numpy(raw[None].copy()), 0.2, iou, max_det=50)
    theirs = theirs.numpy()
    assert len(scores) == len(theirs) > 0
    np.testing.assert_allclose(xyxy, theirs[:, :4], atol=1e-4)
    np.testing.assert_allclose(scores, theirs[:, 4], atol=1e-6)
    np.testing.assert_array_equal(cls, theirs[:, 5].astype(np.int64))


def test_nms_indices_keep_order_by_score():
    boxes = np.array([[0, 0, 10, 10], [100, 100, 110, 110], [1, 1, 10, 10]], np.float32)
    assert nms_indices(boxes, np.array([0.5, 0.9, 0.7], np.float32), 0.5).tolist() == [1, 2]


@pytest.mark.parametrize("max_keep", [0, 1, 3, 50])
def test_nms_max_keep_is_the_prefix_of_the_full_result(max_keep):
    rng = np.random.default_rng(max_keep)
    xy = rng.uniform(0, 100, size=(200, 2)).astype(np.float32)
    boxes = np.concatenate([xy, xy + rng.uniform(5, 30, size=(200, 2)).astype(np.float32)], axis=1)
    scores = rng.uniform(0, 1, size=200).astype(np.float32)
    full = nms_indices(boxes, scores, 0.5)
    assert len(full) > 3
    np.testing.assert_array_equal(nms_indices(boxes, scores, 0.5, max_keep=max_keep), full[:max_keep])


def test_nms_max_det_zero_keeps_nothing():
    assert len(non_max_suppression(_raw([(50, 50, 20, 20, 0, 0.9)]), 0.25, 0.7, max_det=0)[1]) == 0


def test_end2end_filter_keeps_rows_above_threshold_up_to_max_det():
    rows = np.array([[0, 0, 10, 10, 0.9, 1], [0, 0, 10, 10, 0.2, 0], [5, 5, 9, 9, 0.6, 2]], np.float32)
    xyxy, scores, cls = end2end_filter(rows, 0.25, max_det=300)
    assert scores.tolist() == pytest.approx([0.9, 0.6]) and cls.tolist() == [1, 2]
    assert len(end2end_filter(rows, 0.25, max_det=1)[1]) == 1


def _crowded_boxes(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n boxes piled in a small area (most pairs overlap), scores with ties, as a crowded frame's candidates."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 60, size=(n, 2)).astype(np.float32)
    boxes = np.concatenate([xy, xy + rng.uniform(4, 40, size=(n, 2)).astype(np.float32)], axis=1)
    boxes[: n // 10, 2:] = boxes[: n // 10, :2]  # zero-area boxes: union 0 for a pair of them
    scores = rng.choice(np.linspace(0.3, 0.9, 25, dtype=np.float32), size=n)
    return boxes, scores


@pytest.mark.parametrize("seed", range(3))
def test_pairwise_iou_is_box_iou_row_by_row_bit_for_bit(seed):
    from endpoint.model.nms import box_iou, pairwise_iou

    boxes, _ = _crowded_boxes(seed, 150)
    matrix = pairwise_iou(boxes)
    assert matrix.dtype == np.float32
    for i in range(len(boxes)):
        np.testing.assert_array_equal(matrix[i], box_iou(boxes[i], boxes))


@pytest.mark.parametrize("seed, n", [(0, 50), (1, 300), (2, 1000)])
@pytest.mark.parametrize("iou, max_keep", [(0.45, None), (0.7, None), (0.7, 7)])
def test_matrix_nms_keeps_what_the_one_box_loop_keeps(monkeypatch, seed, n, iou, max_keep):
    import endpoint.model.nms as nms

    boxes, scores = _crowded_boxes(seed, n)
    boxes[3] = np.nan  # a NaN box suppresses nothing ahead of it and is dropped, in both paths
    matrix = nms.nms_indices(boxes, scores, iou, max_keep)
    monkeypatch.setattr(nms, "MATRIX_NMS_MAX_BOXES", 0)  # the one-box-at-a-time loop
    loop = nms.nms_indices(boxes, scores, iou, max_keep)
    assert len(loop) > 3
    np.testing.assert_array_equal(matrix, loop)


def test_input_buffer_computes_the_letterbox_once_per_frame_size(monkeypatch):
    """Frames of one stream share a size: the geometry is worked out when the size changes, not every frame."""
    import endpoint.model.letterbox as lb

    rng = np.random.default_rng(5)
    shapes = [(240, 320)] * 3 + [(320, 240)] * 2 + [(240, 320)]
    images = [rng.integers(0, 256, size=(*shape, 3), dtype=np.uint8) for shape in shapes]
    expected = [to_model_input(image, 128) for image in images]
    calls = []
    real = lb.letterbox_geometry
    monkeypatch.setattr(lb, "letterbox_geometry", lambda *a, **k: calls.append(tuple(a[0])) or real(*a, **k))
    buffer = lb.ModelInputBuffer(128)
    for image, (tensor, geo) in zip(images, expected):
        got_tensor, got_geo = buffer.write(image)
        assert got_geo == geo
        np.testing.assert_array_equal(got_tensor, tensor)
    assert calls == [(240, 320), (320, 240), (240, 320)]


def test_input_buffer_float16_tensor_matches_the_float32_one_rounded():
    rng = np.random.default_rng(9)
    image = rng.integers(0, 256, size=(240, 100, 3), dtype=np.uint8)
    half, _ = ModelInputBuffer(128, np.float16).write(image)
    assert half.dtype == np.float16
    np.testing.assert_array_equal(half, to_model_input(image, 128)[0].astype(np.float16))
