"""Frame key layout and the per-endpoint, per-round index read back from key listings."""

from __future__ import annotations

import hashlib
import logging

import pytest

from edge import frame_keys
from edge.frame_index import FrameIndex, FrameRecord
from edge.store.local import LocalStore
from endpoint.wire import protocol


def test_keys_are_zero_padded_and_parse_back():
    assert frame_keys.jpeg_key("cam-a", 3, "f.1") == "frames/cam-a/r00003/f.1.jpg"
    assert frame_keys.meta_key("cam-a", 123456, "f") == "frames/cam-a/r123456/f.json"
    for key, is_meta in ((frame_keys.jpeg_key("cam-a", 7, "x.json"), False),
                         (frame_keys.meta_key("cam-a", 7, "x.jpg"), True)):
        parsed = frame_keys.parse_frame_key(key)
        assert parsed == frame_keys.FrameKey("cam-a", 7, "x.json" if not is_meta else "x.jpg", is_meta)


@pytest.mark.parametrize("key", ["frames/cam-a/r00001/.tmp-abc", "frames/cam-a/r1/f.json", "frames/cam-a/f.json",
                                 "models/cam-a/r00001/f.json", "frames/cam a/r00001/f.json",
                                 "frames/cam-a/r00001/f.png", "frames/cam-a/r00001/sub/f.json",
                                 "frames/cam-a\n/r00001/f.json"])
def test_other_keys_do_not_parse(key):
    assert frame_keys.parse_frame_key(key) is None


@pytest.mark.parametrize("endpoint_id, frame_id", [("../x", "f"), ("cam", "../f"), ("", "f"), ("cam", "a/b"),
                                                   ("cam\n", "f")])
def test_ids_that_would_bend_the_layout_are_refused(endpoint_id, frame_id):
    with pytest.raises(ValueError):
        frame_keys.jpeg_key(endpoint_id, 0, frame_id)


def put_frame(store, endpoint_id: str, round_index: int, frame_id: str, capture_time: float,
              commit: bool = True) -> FrameRecord:
    jpeg = f"jpeg of {frame_id}".encode()
    header = protocol.FrameHeader(endpoint_id=endpoint_id, frame_id=frame_id, capture_time=capture_time,
                                  round=round_index, model_version="s0", width=4, height=4, jpeg_bytes=len(jpeg),
                                  jpeg_sha256=hashlib.sha256(jpeg).hexdigest())
    record = FrameRecord.from_header(header, received_time=capture_time + 1)
    store.put(record.jpeg_key, jpeg)
    if commit:
        store.put(record.meta_key, record.to_json_bytes())
    return record


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.integration)])
def store(request, tmp_path):
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    return request.getfixturevalue("s3_store")


def test_index_lists_committed_frames_per_endpoint_and_round(store, caplog):
    put_frame(store, "cam-b", 0, "b0", 5.0)
    late = put_frame(store, "cam-a", 2, "a-late", 9.0)
    early = put_frame(store, "cam-a", 2, "z-early", 1.0)
    put_frame(store, "cam-a", 0, "a0", 1.0)
    put_frame(store, "cam-a", 2, "uncommitted", 3.0, commit=False)  # .jpg without .json: not stored yet
    put_frame(store, "cam-c", 4, "only-jpeg", 3.0, commit=False)
    store.put("frames/cam-a/r00002/broken.json", b"{not json")
    store.put("frames/README.txt", b"not a frame")
    index = FrameIndex(store)

    assert index.endpoints() == ["cam-a", "cam-b"]
    assert index.rounds("cam-a") == [0, 2] and index.rounds("cam-z") == []
    assert index.count("cam-a", 2) == 3  # counts commit markers, readable or not
    with caplog.at_level(logging.WARNING, logger="edge.frame_index"):
        frames = index.frames("cam-a", 2)
    assert [f.frame_id for f in frames] == ["z-early", "a-late"]  # by capture time
    assert frames == [early, late] and frames[0].received_time == 2.0
    assert "broken.json" in caplog.text
    assert index.load_jpeg(frames[1]) == b"jpeg of a-late"
    assert index.frames("cam-a", 1) == [] and index.count("cam-b", 0) == 1
