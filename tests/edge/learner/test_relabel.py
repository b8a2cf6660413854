"""The student learns the fine-tuned teacher's labels: ``relabel_for_student`` labels the domain's newest
stored frames afresh (ground truth first), keeps what has no stored frame, and adds what the old teacher missed."""

from __future__ import annotations

import cv2
import numpy as np

from edge.frame_index import FrameRecord
from edge.labels import LabelContext, frame_name, stored_frames
from edge.learner.relabel import relabel_for_student
from edge.scheduler.policy import SKIP, RoundRecord
from edge.store.local import LocalStore
from edge.yolo_dataset import LabelledImage
from endpoint.sources.scenario import SyntheticScenario
from endpoint.wire.protocol import make_frame_header
from tests.edge.test_labels import put_frame

BOGUS_BOX = np.array([[0.0, 0.0, 0.05, 0.05]], np.float32)


def history_row(round_index: int, domain: str) -> RoundRecord:
    return RoundRecord(round=round_index, endpoint_id="cam-1", policy="test", budget_bytes=0, planned_upload_bytes=0,
                       spent_upload_bytes=0, planned_push_bytes=0, spent_push_bytes=0, frames_uploaded=0,
                       push=SKIP.name, push_kind=SKIP.kind, push_student=SKIP.student, uploaded_bytes_before=0,
                       map_base=0.0, anchor_uploaded_bytes=0, anchor_map=0.0, map_before=0.0, map_after=0.0,
                       domain=domain)


def store_records(store, round_index: int):
    return stored_frames(store, rounds=[round_index], endpoints=["cam-1"])


def put_grey_frame(store, frame_id: str, round_index: int) -> str:
    """A stored frame with nothing in it (the letterbox grey): no teacher finds a box there."""
    jpeg = cv2.imencode(".jpg", np.full((240, 320, 3), 114, np.uint8))[1].tobytes()
    header = make_frame_header(jpeg, endpoint_id="cam-1", frame_id=frame_id, capture_time=0.0, round=round_index,
                               model_version="v0", width=320, height=240, domain="day")
    record = FrameRecord.from_header(header, received_time=1.0)
    store.put(record.jpeg_key, jpeg)
    store.put(record.meta_key, record.to_json_bytes())
    return frame_name(record)


def relabel(items, store, teacher_pt, limit: int):
    """Round 3 of "day", after round 1 ("dusk") and round 2 ("day"), with the given teacher as the fine-tuned one."""
    history = [history_row(1, "dusk"), history_row(2, "day")]
    ctx = LabelContext(teacher_weights=teacher_pt, teacher_conf=0.3, imgsz=128)
    return relabel_for_student(items, store, ["cam-1"], history, "day", 3, ("oracle", "teacher"), ctx, limit)


def test_the_student_set_takes_the_new_teachers_labels_on_the_domains_stored_frames(tmp_path, tiny_yolo):
    store, scenario = LocalStore(tmp_path / "store"), SyntheticScenario(seed=3)
    dusk = [put_frame(store, scenario, i, with_labels=False, round_index=1, domain="dusk") for i in range(4)]
    earlier = [put_frame(store, scenario, 10 + i, with_labels=False, round_index=2) for i in range(6)]
    truth, _ = put_frame(store, scenario, 20, with_labels=True, round_index=3)
    this_round = [put_frame(store, scenario, 30 + i, with_labels=False, round_index=3) for i in range(5)]
    assert len(dusk) == 4 and len(earlier) == 6 and len(this_round) == 5
    grey = put_grey_frame(store, "grey", round_index=2)
    names = {r: [frame_name(rec) for rec in store_records(store, r)] for r in (1, 2, 3)}
    first = next(n for n in names[2] if n != grey)
    old_label = LabelledImage(first, b"old jpeg", BOGUS_BOX, np.array([0]))  # the old teacher's guess
    bootstrap = LabelledImage("bootstrap-0001.jpg", b"jpeg", BOGUS_BOX, np.array([1]))  # no stored frame
    kept_grey = LabelledImage(grey, b"grey jpeg", BOGUS_BOX, np.array([2]))  # the new teacher finds nothing here
    items = [bootstrap, old_label, kept_grey]

    relabelled = relabel(items, store, tiny_yolo.pt, 400)
    by_name = {item.name: item for item in relabelled}
    assert by_name["bootstrap-0001.jpg"] is bootstrap  # nothing stored to relabel: kept as it was
    assert not set(names[1]) & set(by_name)  # another domain's round is not this domain's
    fresh = by_name[first]
    assert fresh.image != b"old jpeg" and not np.array_equal(fresh.boxes, BOGUS_BOX)  # the new teacher's labels
    assert by_name[grey] is kept_grey  # no box from the new teacher: its old labels stay
    added = set(by_name) - {bootstrap.name, old_label.name, grey}
    assert len(added) >= 8  # the detector trained on "day" finds boxes on most of the other day frames
    ground_truth = next(by_name[n] for n in names[3] if n.endswith("f.0020.jpg"))
    np.testing.assert_allclose(ground_truth.boxes, np.asarray(truth.boxes, np.float32).reshape(-1, 4), atol=1e-6)

    newest_three = relabel(items, store, tiny_yolo.pt, 3)
    assert {i.name for i in newest_three} - {i.name for i in items} <= set(names[3][-3:])
    assert relabel(items, store, tiny_yolo.pt, 0) == items

