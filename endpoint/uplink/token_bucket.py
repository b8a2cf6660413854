"""A token bucket that keeps the uplink inside its byte rate."""

from __future__ import annotations

import math
import threading
import time
from typing import Callable


class TokenBucket:
    """``rate_bytes_per_s`` refills up to ``capacity_bytes``; a send over the capacity waits for a full bucket."""

    def __init__(self, rate_bytes_per_s: float, capacity_bytes: float,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] | None = None):
        if not rate_bytes_per_s > 0 or not capacity_bytes > 0:
            raise ValueError("rate and capacity must be positive")
        self._rate = float(rate_bytes_per_s)
        self._capacity = float(capacity_bytes)
        self._clock = clock
        self._sleep = sleep  # None: wait on the condition, so a rate change or wake() ends the wait at once
        self._tokens = float(capacity_bytes)
        self._stamp = clock()
        self._changed = threading.Condition(threading.Lock())

    @property
    def rate_bytes_per_s(self) -> float:
        return self._rate

    def set_rate(self, rate_bytes_per_s: float, capacity_bytes: float | None = None) -> None:
        """Change the rate (a new round's plan; 0 pauses sends); earned tokens are kept up to the new capacity."""
        if not rate_bytes_per_s >= 0 or math.isinf(rate_bytes_per_s):
            raise ValueError(f"rate must be finite and >= 0, not {rate_bytes_per_s}")
        if capacity_bytes is not None and not 0 < capacity_bytes < math.inf:
            raise ValueError(f"capacity must be finite and positive, not {capacity_bytes}")
        with self._changed:
            self._refill()
            self._rate = float(rate_bytes_per_s)
            if capacity_bytes is not None:
                self._capacity = float(capacity_bytes)
            self._tokens = min(self._tokens, self._capacity)
            self._changed.notify_all()

    def wake(self) -> None:
        """End every wait inside ``consume`` now, so the waiters look at their cancel events."""
        with self._changed:
            self._changed.notify_all()

    def try_consume(self, n_bytes: int) -> float:
        """Take ``n_bytes`` if available and return 0; else return the seconds to wait first (inf at rate 0)."""
        with self._changed:
            return self._try_consume(n_bytes)

    def consume(self, n_bytes: int, timeout_s: float | None = None, cancel: threading.Event | None = None) -> bool:
        """Block until ``n_bytes`` may be sent; False once ``timeout_s`` has passed or ``cancel`` is set."""
        deadline = math.inf if timeout_s is None else self._clock() + timeout_s
        with self._changed:
            while True:
                wait_s = self._try_consume(n_bytes)
                if wait_s == 0.0:
                    return True
                remaining_s = deadline - self._clock()
                if remaining_s <= 0 or (cancel is not None and cancel.is_set()):
                    return False
                self._pause(min(wait_s, remaining_s))

    def _try_consume(self, n_bytes: int) -> float:
        self._refill()
        need = min(float(n_bytes), self._capacity)  # a frame larger than the bucket goes once it is full
        if self._tokens >= need:
            self._tokens -= n_bytes  # may go negative: a large send is paid for afterwards
            return 0.0
        if self._rate <= 0:
            return math.inf
        return (need - self._tokens) / self._rate

    def _pause(self, seconds: float) -> None:
        """Sleep without holding the lock; a condition wait ends early on set_rate or wake."""
        if self._sleep is None:
            # past TIMEOUT_MAX (a plan's rate of 1e-8 B/s) a timed wait raises OverflowError: wait for a change
            self._changed.wait(None if seconds > threading.TIMEOUT_MAX else seconds)
            return
        self._changed.release()
        try:
            self._sleep(seconds)
        finally:
            self._changed.acquire()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
