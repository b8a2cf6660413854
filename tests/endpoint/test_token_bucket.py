import threading

import pytest

from endpoint.uplink.token_bucket import TokenBucket


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, s):
        self.now += s


def test_rate_is_held_over_many_sends():
    clock = FakeClock()
    bucket = TokenBucket(1000, 500, clock=clock, sleep=clock.sleep)
    for _ in range(20):
        assert bucket.consume(250)
    # 5000 bytes at 1000 B/s with a 500-byte head start: 4.5 s
    assert clock.now == pytest.approx(4.5, abs=0.01)


def test_large_send_waits_for_full_bucket_then_goes_into_debt():
    clock = FakeClock()
    bucket = TokenBucket(100, 200, clock=clock, sleep=clock.sleep)
    assert bucket.consume(1000)  # larger than capacity: allowed once full
    assert bucket.try_consume(10) == pytest.approx((10 + 800) / 100)


def test_timeout_returns_false():
    clock = FakeClock()
    bucket = TokenBucket(10, 10, clock=clock, sleep=clock.sleep)
    assert bucket.consume(10)
    assert not bucket.consume(10, timeout_s=0.5)


def test_set_rate_applies():
    clock = FakeClock()
    bucket = TokenBucket(10, 100, clock=clock, sleep=clock.sleep)
    bucket.consume(100)
    bucket.set_rate(1000)
    assert bucket.try_consume(100) == pytest.approx(0.1)


@pytest.mark.parametrize("rate, cap", [(0, 1), (1, 0), (-1, 5)])
def test_rejects_bad_settings(rate, cap):
    with pytest.raises(ValueError):
        TokenBucket(rate, cap)


def test_a_timeout_is_waited_out_not_returned_at_once():
    clock = FakeClock()
    bucket = TokenBucket(1, 10, clock=clock, sleep=clock.sleep)
    assert bucket.consume(10)
    assert not bucket.consume(10, timeout_s=0.5)  # 10 s away: a caller looping on this must not spin
    assert clock.now == pytest.approx(0.5)


def test_rate_zero_pauses_until_a_new_rate_wakes_the_waiter():
    bucket = TokenBucket(1000, 100)
    assert bucket.consume(100)
    bucket.set_rate(0)
    assert bucket.try_consume(1) == float("inf")
    got = []
    waiter = threading.Thread(target=lambda: got.append(bucket.consume(50)))
    waiter.start()
    assert not got
    bucket.set_rate(1e6)
    waiter.join(timeout=5)
    assert got == [True]


@pytest.mark.parametrize("rate", [1e-8, 1e-300])
def test_a_wait_longer_than_any_timeout_waits_for_a_new_rate(rate):
    """100 s of tokens at 1e-8 B/s is 1e10 s, past threading.TIMEOUT_MAX: the wait raised OverflowError."""
    bucket = TokenBucket(rate, 100)
    assert bucket.consume(100)
    got = []
    waiter = threading.Thread(target=lambda: got.append(bucket.consume(50)))
    waiter.start()
    waiter.join(timeout=0.3)
    assert not got  # still waiting, not raised
    bucket.set_rate(1e6)
    waiter.join(timeout=5)
    assert got == [True]


def test_cancel_ends_a_wait():
    bucket = TokenBucket(1000, 100)
    bucket.consume(100)
    bucket.set_rate(0)
    cancel = threading.Event()
    got = []
    waiter = threading.Thread(target=lambda: got.append(bucket.consume(50, cancel=cancel)))
    waiter.start()
    cancel.set()
    bucket.wake()
    waiter.join(timeout=5)
    assert got == [False]


@pytest.mark.parametrize("rate", [-1.0, float("nan"), float("inf")])
def test_set_rate_rejects_bad_rates(rate):
    bucket = TokenBucket(10, 10)
    with pytest.raises(ValueError):
        bucket.set_rate(rate)
    assert bucket.rate_bytes_per_s == 10
