"""edge.labels: oracle, import and teacher label sources over frames in a real local store."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.frame_index import FrameRecord
from edge.labels import LabelContext, import_label_key, label_frames, stored_frames, teacher_labelled
from edge.map_metric import MeanAveragePrecision
from edge.store.local import LocalStore
from edge.yolo_dataset import LabelledImage
from endpoint.sources.scenario import SyntheticScenario
from endpoint.wire.protocol import Detection, make_frame_header


def put_frame(store, scenario, index, with_labels, endpoint_id="cam-1", round_index=2, domain="day"):
    frame = scenario.frame(domain, index)
    jpeg = cv2.imencode(".jpg", frame.image)[1].tobytes()
    labels = ([Detection(cls=int(c), conf=1.0, box=tuple(float(v) for v in b))
               for b, c in zip(frame.boxes, frame.classes)] if with_labels else None)
    header = make_frame_header(jpeg, endpoint_id=endpoint_id, frame_id=f"f.{index:04d}", capture_time=float(index),
                               round=round_index, model_version="v0", width=frame.image.shape[1],
                               height=frame.image.shape[0], domain=domain, labels=labels)
    record = FrameRecord.from_header(header, received_time=100.0 + index)
    store.put(record.jpeg_key, jpeg)
    store.put(record.meta_key, record.to_json_bytes())
    return frame, jpeg


@pytest.fixture
def scenario():
    return SyntheticScenario(seed=3)


def test_oracle_then_import_in_order(tmp_path, scenario):
    store = LocalStore(tmp_path)
    with_gt, jpeg0 = put_frame(store, scenario, 0, with_labels=True)
    put_frame(store, scenario, 1, with_labels=False)
    put_frame(store, scenario, 2, with_labels=False)
    # frame 1 gets an imported label file; frame 2 stays unlabelled
    store.put(import_label_key("cam-1", 2, "f.0001"), b"1 0.5 0.5 0.2 0.4\n\n0 0.25 0.25 0.1 0.1\n")
    records = stored_frames(store)
    assert [r.frame_id for r in records] == ["f.0000", "f.0001", "f.0002"]

    oracle_only = label_frames(store, records, ["oracle"])
    assert [f.record.frame_id for f in oracle_only] == ["f.0000"]
    item = oracle_only[0].item
    assert item.image == jpeg0 and item.name.endswith("f.0000.jpg")
    np.testing.assert_allclose(item.boxes, with_gt.boxes, atol=1e-6)
    np.testing.assert_array_equal(item.classes, with_gt.classes)

    both = label_frames(store, records, ["oracle", "import"])
    assert [(f.record.frame_id, f.source) for f in both] == [("f.0000", "oracle"), ("f.0001", "import")]
    np.testing.assert_allclose(both[1].item.boxes, [[0.4, 0.3, 0.6, 0.7], [0.2, 0.2, 0.3, 0.3]], atol=1e-6)
    np.testing.assert_array_equal(both[1].item.classes, [1, 0])


def test_import_first_overrides_oracle_and_empty_file_means_no_objects(tmp_path, scenario):
    store = LocalStore(tmp_path)
    put_frame(store, scenario, 0, with_labels=True)
    store.put(import_label_key("cam-1", 2, "f.0000"), b"")
    (frame,) = label_frames(store, stored_frames(store), ["import", "oracle"])
    assert frame.source == "import" and frame.item.boxes.shape == (0, 4)


def test_rounds_and_endpoints_are_selectable(tmp_path, scenario):
    store = LocalStore(tmp_path)
    put_frame(store, scenario, 0, True, endpoint_id="cam-1", round_index=1)
    put_frame(store, scenario, 1, True, endpoint_id="cam-2", round_index=2)
    assert [r.endpoint_id for r in stored_frames(store, rounds=[2])] == ["cam-2"]
    assert [r.round for r in stored_frames(store, endpoints=["cam-1"])] == [1]


def test_unknown_source_and_teacher_without_weights_are_refused(tmp_path, scenario):
    store = LocalStore(tmp_path)
    put_frame(store, scenario, 0, with_labels=False)
    records = stored_frames(store)
    with pytest.raises(KeyError, match="unknown label sources"):
        label_frames(store, records, ["oracle", "humans"])
    with pytest.raises(ValueError, match="teacher_weights"):
        label_frames(store, records, ["teacher"])


@pytest.mark.integration
def test_teacher_pseudo_labels_match_ground_truth(tmp_path, scenario, tiny_yolo):
    """The shared tiny detector (trained on "day") as the teacher: its labels must resemble the truth."""
    store = LocalStore(tmp_path)
    truths = [put_frame(store, scenario, i, with_labels=False)[0] for i in range(12)]
    records = stored_frames(store)
    ctx = LabelContext(teacher_weights=tiny_yolo.pt, teacher_conf=0.3, imgsz=tiny_yolo.imgsz)
    labelled = label_frames(store, records, ["oracle", "teacher"], ctx)
    assert [f.source for f in labelled] == ["teacher"] * 12
    metric = MeanAveragePrecision()
    for frame, truth in zip(labelled, truths):
        assert ((frame.item.boxes >= 0) & (frame.item.boxes <= 1)).all()
        metric.update(frame.item.boxes, np.ones(len(frame.item.boxes)), frame.item.classes, truth.boxes, truth.classes)
    assert metric.compute().map50 > 0.3
    strict = label_frames(store, records, ["teacher"], LabelContext(tiny_yolo.pt, 0.999, tiny_yolo.imgsz))
    assert sum(len(f.item.classes) for f in strict) < sum(len(f.item.classes) for f in labelled)
    # a frame without a box at or above the threshold is a likely miss, not a scene to learn as background
    assert all(len(f.item.classes) for f in strict) and len(strict) < len(records)


def test_teacher_labelled_images_in_memory_get_the_stored_frames_labels(tmp_path, scenario, tiny_yolo):
    """``teacher_labelled`` (bench distill --labels teacher) labels arrays as the source labels stored frames."""
    store = LocalStore(tmp_path)
    jpegs = [put_frame(store, scenario, i, with_labels=False)[1] for i in range(8)]
    ctx = LabelContext(teacher_weights=tiny_yolo.pt, teacher_conf=0.5, imgsz=tiny_yolo.imgsz, batch=3)
    frames = label_frames(store, stored_frames(store), ["teacher"], ctx)
    stored = {f.item.name.split("f.")[-1].removesuffix(".jpg"): f.item for f in frames}
    items = [LabelledImage(f"{i:04d}", cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR),
                           np.zeros((0, 4), np.float32), np.zeros(0, np.int64)) for i, j in enumerate(jpegs)]
    labelled = teacher_labelled(items, ctx)
    assert 0 < len(stored) < len(items)  # some frames have no box at 0.5: left out, as the stored source does
    assert [item.name for item in labelled] == sorted(stored)
    for item in labelled:
        assert item.image is items[int(item.name)].image
        np.testing.assert_allclose(item.boxes, stored[item.name].boxes, atol=1e-6)
        np.testing.assert_array_equal(item.classes, stored[item.name].classes)
    with pytest.raises(ValueError, match="teacher_weights"):
        teacher_labelled(items, LabelContext())


def test_import_labels_and_yolo_folders_follow_the_one_parser_rule(tmp_path, scenario):
    """Import labels (edge), YOLO folders (edge) and the endpoint's image source all clip and drop alike."""
    from edge.yolo_dataset import folder_items
    from endpoint.wire.yolo_labels import read_label_file

    text = b"0 0.05 0.5 0.2 0.2\n1 1.5 0.5 0.2 0.2\n2 0.5 0.5 0.2 0.2\n"
    store = LocalStore(tmp_path / "store")
    put_frame(store, scenario, 0, with_labels=False)
    store.put(import_label_key("cam-1", 2, "f.0000"), text)
    (imported,) = label_frames(store, stored_frames(store), ["import"])

    root = tmp_path / "folder"
    (root / "images" / "val").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    cv2.imwrite(str(root / "images" / "val" / "a.png"), scenario.frame("day", 0).image)
    (root / "labels" / "val" / "a.txt").write_bytes(text)
    (from_folder,) = folder_items(root, "val")
    endpoint_boxes = [d.box for d in read_label_file(root / "labels" / "val" / "a.txt")]

    expected = [[0.0, 0.4, 0.15, 0.6], [0.4, 0.4, 0.6, 0.6]]  # clipped; the box wholly outside is dropped
    for boxes in (imported.item.boxes, from_folder.boxes, endpoint_boxes):
        np.testing.assert_allclose(boxes, expected, atol=1e-6)
    np.testing.assert_array_equal(imported.item.classes, [0, 2])
    np.testing.assert_array_equal(from_folder.classes, [0, 2])


def _without_quantization_tables(jpeg: bytes) -> bytes:
    """The JPEG with its DQT segments cut: every segment still in place (ingest's check passes), undecodable."""
    out, pos = bytearray(jpeg[:2]), 2
    while jpeg[pos + 1] != 0xDA:
        length = jpeg[pos + 2] << 8 | jpeg[pos + 3]
        if jpeg[pos + 1] != 0xDB:
            out += jpeg[pos:pos + 2 + length]
        pos += 2 + length
    return bytes(out + jpeg[pos:])


def test_teacher_skips_a_stored_frame_that_does_not_decode(tmp_path, scenario, tiny_yolo):
    """Ingest checks a JPEG's structure, not its pixels: a frame that passed it yet won't decode stays unlabelled."""
    from edge.frame_checks import check_jpeg

    store = LocalStore(tmp_path)
    for i in range(3):
        put_frame(store, scenario, i, with_labels=False)
    records = stored_frames(store)
    broken = _without_quantization_tables(store.get(records[1].jpeg_key))
    check_jpeg(broken)  # what ingest accepts
    assert cv2.imdecode(np.frombuffer(broken, np.uint8), cv2.IMREAD_COLOR) is None
    store.put(records[1].jpeg_key, broken)
    labelled = label_frames(store, records, ["teacher"], LabelContext(tiny_yolo.pt, 0.3, tiny_yolo.imgsz))
    assert [f.record.frame_id for f in labelled] == ["f.0000", "f.0002"]


def test_label_free_agreement_skips_an_uploaded_frame_that_does_not_decode(tmp_path, scenario, tiny_yolo):
    """Drift checks and each round's record score uploaded frames; one that won't decode must not stop the round."""
    from edge.evaluate import agreement

    store = LocalStore(tmp_path)
    jpegs = [put_frame(store, scenario, i, with_labels=False)[1] for i in range(3)]
    jpegs[1] = _without_quantization_tables(jpegs[1])
    result = agreement(tiny_yolo.onnx, tiny_yolo.pt, jpegs, tiny_yolo.imgsz, teacher_conf=0.01)
    assert result.images == 2


def test_label_free_agreement_is_none_when_no_uploaded_frame_decodes(tmp_path, scenario, tiny_yolo):
    """No estimate rather than 0.0: a drift check would read 0.0 as agreement collapsing and start a round."""
    from edge.evaluate import agreement

    store = LocalStore(tmp_path)
    jpegs = [_without_quantization_tables(put_frame(store, scenario, i, with_labels=False)[1]) for i in range(2)]
    assert agreement(tiny_yolo.onnx, tiny_yolo.pt, jpegs, tiny_yolo.imgsz, teacher_conf=0.01) is None


def test_oracle_and_imported_labels_skip_a_frame_that_does_not_decode(tmp_path, scenario):
    """ultralytics' image check passes such a JPEG and its loader then raises mid-training: keep it out."""
    store = LocalStore(tmp_path)
    for i in range(3):
        put_frame(store, scenario, i, with_labels=i < 2)
    records = stored_frames(store)
    for rec in records[1:]:
        store.put(rec.jpeg_key, _without_quantization_tables(store.get(rec.jpeg_key)))
    store.put(import_label_key("cam-1", 2, "f.0002"), b"0 0.5 0.5 0.2 0.2\n")
    labelled = label_frames(store, records, ["oracle", "import"])
    assert [f.record.frame_id for f in labelled] == ["f.0000"]
