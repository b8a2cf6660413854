"""A real full filesystem under the spool: puts are refused with a clear error, nothing half-written stays."""


import pytest

from endpoint.uplink.spool import Spool, SpoolDiskFull, SpoolFull
from endpoint.wire import protocol
from tests.endpoint.spool_frames import frame_bytes

JPEG_BYTES = 16 * 1024


@pytest.fixture
def disk(small_disk):
    """A 256 KiB tmpfs: a disk that really fills up."""
    return small_disk("256k")


def _put_until_full(spool: Spool) -> tuple[list[str], SpoolDiskFull]:
    stored = []
    for _ in range(64):  # 256 KiB / 16 KiB: full well before this
        seq, frame_id = spool.next_frame_id()  # never raises, even when the counter cannot be written
        try:
            spool.put(seq, frame_bytes(frame_id, JPEG_BYTES))
        except SpoolDiskFull as exc:
            return stored, exc
        stored.append(frame_id)
    pytest.fail("the 256 KiB disk never filled up")


def test_a_full_disk_refuses_frames_and_takes_them_again_once_acks_free_space(disk):
    spool = Spool(disk / "spool")
    stored, error = _put_until_full(spool)
    assert stored, "not even one frame fitted"
    assert isinstance(error, SpoolFull) and "disk full" in str(error)  # the runtime's handler skips and counts it
    assert not list((disk / "spool").glob(".tmp-*")), "a half-written temp file holds the space"
    for _ in range(3):  # still full: every put is refused the same way, none crashes
        seq, frame_id = spool.next_frame_id()
        with pytest.raises(SpoolDiskFull):
            spool.put(seq, frame_bytes(frame_id, JPEG_BYTES))
    assert [e.frame_id for e in spool.pending()] == stored
    for entry in spool.pending():  # what was accepted is intact
        assert protocol.decode_frame(spool.read(entry)).header.frame_id == entry.frame_id

    reopened = Spool(disk / "spool")  # a restart on the full disk starts fine
    assert reopened.depth() == len(stored)
    for frame_id in stored[:3]:  # the edge acks a few: space frees up
        assert reopened.remove(frame_id)
    seq, frame_id = reopened.next_frame_id()
    reopened.put(seq, frame_bytes(frame_id, JPEG_BYTES))
    assert frame_id in reopened and frame_id not in stored
