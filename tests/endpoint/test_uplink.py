"""Uplink unit tests with a fake link: order, window, acks, refusals, re-sends after a timeout or an outage."""

import time

from endpoint.uplink.spool import Spool
from endpoint.uplink.token_bucket import TokenBucket
from endpoint.uplink.uplink import Uplink
from tests.endpoint.spool_frames import fill, frame_bytes
from tests.endpoint.uplink_parts import FakeLink, wait_until


def _spool(tmp_path, n):
    spool = Spool(tmp_path)
    return spool, fill(spool, n)


def test_sends_oldest_first_within_window_and_acks_drain_the_spool(tmp_path):
    link, (spool, ids) = FakeLink(), _spool(tmp_path, 10)
    up = Uplink(link, spool, TokenBucket(1e9, 1e9), window=4, ack_timeout_s=60)
    up.start()
    try:
        assert wait_until(lambda: len(link.sent) == 4)
        time.sleep(0.1)
        assert link.sent == [frame_bytes(i) for i in ids[:4]]  # the window holds the rest back
        link.ack(ids[:4])
        assert wait_until(lambda: len(link.sent) == 8)
        link.ack(ids[4:8])
        assert wait_until(lambda: len(link.sent) == 10)
        link.ack(ids[8:])
        assert wait_until(up.drained)
        assert up.stats.frames_acked == 10 and up.stats.frames_resent == 0
    finally:
        up.stop()


def test_unacked_frames_are_resent_after_the_timeout(tmp_path):
    link, (spool, ids) = FakeLink(), _spool(tmp_path, 2)
    up = Uplink(link, spool, TokenBucket(1e9, 1e9), window=8, ack_timeout_s=0.2)
    up.start()
    try:
        assert wait_until(lambda: len(link.sent) >= 4)  # both sent, then both sent again
        assert up.stats.frames_resent >= 2
        link.ack(ids)
        assert wait_until(up.drained)
    finally:
        up.stop()


def test_an_outage_resends_what_was_in_flight(tmp_path):
    link, (spool, _) = FakeLink(), _spool(tmp_path, 3)
    up = Uplink(link, spool, TokenBucket(1e9, 1e9), window=8, ack_timeout_s=60)
    up.start()
    try:
        assert wait_until(lambda: len(link.sent) == 3)
        link.connected.clear()  # a short outage: paho reconnects
        link.connection_count += 1
        link.connected.set()
        assert wait_until(lambda: len(link.sent) == 6)  # re-sent without waiting for the 60 s timeout
    finally:
        up.stop()


def test_refused_frames_leave_the_spool_without_counting_as_acked(tmp_path):
    link, (spool, ids) = FakeLink(), _spool(tmp_path, 2)
    up = Uplink(link, spool, TokenBucket(1e9, 1e9), window=8, ack_timeout_s=60)
    up.start()
    try:
        assert wait_until(lambda: len(link.sent) == 2)
        link.ack(ids[:1], ok=False)
        link.ack(ids[1:])
        assert wait_until(up.drained)
        assert up.stats.frames_refused == 1 and up.stats.frames_acked == 1
    finally:
        up.stop()


def test_the_byte_rate_is_held(tmp_path):
    link, spool = FakeLink(), Spool(tmp_path)
    fill(spool, 6, jpeg_bytes=1000)
    up = Uplink(link, spool, TokenBucket(10_000, 1000), window=8, ack_timeout_s=60)
    started = time.monotonic()
    up.start()
    try:
        assert wait_until(lambda: len(link.sent) == 6)
        assert time.monotonic() - started >= 0.45  # over 5000 bytes beyond the first burst at 10 kB/s
    finally:
        up.stop()
