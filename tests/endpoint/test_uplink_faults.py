"""The uplink under faults: no spinning on a starved bucket, bad files quarantined, read errors survived."""

import threading
from pathlib import Path

import pytest

from endpoint.uplink.spool import QUARANTINE_DIR, Spool
from endpoint.uplink.token_bucket import TokenBucket
from endpoint.uplink.uplink import Uplink
from endpoint.wire import protocol
from tests.endpoint.spool_frames import fill, frame_bytes
from tests.endpoint.uplink_parts import FakeLink, wait_until

BIG_JPEG_BYTES = 300 * 1024


def _sent_ids(link):
    with link.lock:
        return [protocol.decode_frame(p).header.frame_id for p in link.sent]


def _bytes_read_by_this_process() -> int:
    """Every byte this process read so far, whichever code path read it (Linux's own count)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


@pytest.mark.parametrize("starved_rate", [0.0, 1.0])  # 1 B/s: the scheduler's floor for a zero-budget plan
@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="counts reads with Linux's /proc/self/io")
def test_a_starved_bucket_waits_without_rereading_and_sends_once_the_rate_rises(tmp_path, starved_rate):
    link, spool = FakeLink(), Spool(tmp_path)
    (frame_id,) = fill(spool, 1, jpeg_bytes=BIG_JPEG_BYTES)  # larger than the bucket, too
    bucket = TokenBucket(1e6, 64 * 1024)
    assert bucket.consume(64 * 1024)  # empty it
    bucket.set_rate(starved_rate)
    up = Uplink(link, spool, bucket, window=4, ack_timeout_s=60)
    up.start()
    try:
        read_before = _bytes_read_by_this_process()
        threading.Event().wait(1.0)  # a window to watch for busy work in, not a synchronisation
        reads = (_bytes_read_by_this_process() - read_before) / BIG_JPEG_BYTES
        assert reads <= 20, f"{reads:.0f} reads of a {BIG_JPEG_BYTES}-byte frame in 1 s"
        assert link.sent == []
        bucket.set_rate(10e6)
        assert wait_until(lambda: _sent_ids(link) == [frame_id])
    finally:
        up.stop()


def test_a_frame_larger_than_the_bucket_still_goes(tmp_path):
    link, spool = FakeLink(), Spool(tmp_path)
    ids = fill(spool, 2, jpeg_bytes=BIG_JPEG_BYTES)
    up = Uplink(link, spool, TokenBucket(1e6, 10_000), window=4, ack_timeout_s=60)
    up.start()
    try:
        assert wait_until(lambda: _sent_ids(link) == ids)  # the second waits out the first one's debt
    finally:
        up.stop()


def test_corrupt_or_misnamed_frames_are_quarantined_not_sent(tmp_path):
    link, spool = FakeLink(), Spool(tmp_path)
    good = fill(spool, 1)
    bad = []
    for payload in (b"", b"garbage", frame_bytes("f0000000999")[:-10], frame_bytes("f0000000999")):
        seq, frame_id = spool.next_frame_id()  # empty, garbage, truncated, a frame that names another id
        spool.put(seq, payload)
        bad.append(frame_id)
    good += fill(spool, 1)
    up = Uplink(link, spool, TokenBucket(1e9, 1e9), window=8, ack_timeout_s=60)
    up.start()
    try:
        assert wait_until(lambda: spool.depth() == 2 and len(link.sent) == 2)
        assert _sent_ids(link) == good
        assert len(list((tmp_path / QUARANTINE_DIR).iterdir())) == 4
        assert up.stats.frames_quarantined == 4 and not any(f in spool for f in bad)
        link.ack(good)
        assert up.wait_drained(5.0)
        assert len(link.sent) == 2  # nothing bad was ever sent
    finally:
        up.stop()


def test_an_unreadable_frame_does_not_stop_the_sender(tmp_path):
    link, spool = FakeLink(), Spool(tmp_path)
    ids = fill(spool, 2)
    first = spool.get(ids[0])
    payload = first.path.read_bytes()
    first.path.unlink()
    first.path.mkdir()  # a real OSError (EISDIR) on every read of that frame
    up = Uplink(link, spool, TokenBucket(1e9, 1e9), window=8, ack_timeout_s=0.3)
    up.start()
    try:
        assert wait_until(lambda: ids[1] in _sent_ids(link))  # the sender lives and moves past it
        first.path.rmdir()
        first.path.write_bytes(payload)  # the fault clears
        assert wait_until(lambda: ids[0] in _sent_ids(link))  # retried, not dropped: spool-until-ack holds
        link.ack(ids)
        assert up.wait_drained(5.0)
    finally:
        up.stop()


def test_a_frame_deleted_behind_the_spools_back_is_dropped(tmp_path):
    reads_link, spool = FakeLink(), Spool(tmp_path)
    ids = fill(spool, 2)
    spool.get(ids[0]).path.unlink()
    up = Uplink(reads_link, spool, TokenBucket(1e9, 1e9), window=8, ack_timeout_s=60)
    up.start()
    try:
        assert wait_until(lambda: _sent_ids(reads_link) == [ids[1]])
        assert ids[0] not in spool
        reads_link.ack([ids[1]])
        assert up.wait_drained(5.0)
    finally:
        up.stop()


def test_in_flight_state_stays_within_the_window(tmp_path):
    link, spool = FakeLink(), Spool(tmp_path)
    ids = fill(spool, 20)
    up = Uplink(link, spool, TokenBucket(1e9, 1e9), window=4, ack_timeout_s=0.02)
    peak = []
    up.start()
    try:
        def churned():
            peak.append(up.in_flight())
            return len(link.sent) >= 40
        assert wait_until(churned)  # no acks: the same frames time out and go again
        assert max(peak) <= 4
        assert set(_sent_ids(link)) == set(ids[:4])  # timed-out frames go before newer ones
        link.connection_count += 1  # a reconnect starts the window again
        assert wait_until(lambda: up.in_flight() <= 4 and len(link.sent) >= 50)
        link.ack(ids)
        assert up.wait_drained(5.0) and up.in_flight() == 0
    finally:
        up.stop()
